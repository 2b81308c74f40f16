package killbill2.auth;

import com.google.gson.JsonObject;
import java.time.Instant;

/**
 * A join ticket: hand {@link #ticket()} to the game server being joined (it redeems it once, before
 * {@link #expires()}). It proves who the player is without giving the server the player's key.
 */
public final class Ticket {
    private final String ticket;
    private final Instant expires;

    Ticket(String ticket, Instant expires) {
        this.ticket = ticket;
        this.expires = expires;
    }

    static Ticket from(JsonObject o) {
        return new Ticket(Json.string(o, "ticket"), Json.time(o, "expires"));
    }

    /** The ticket to hand to the game server (a short-lived credential: do not log it). */
    public String ticket() {
        return ticket;
    }

    public Instant expires() {
        return expires;
    }

    /** Never shows the ticket itself. */
    @Override
    public String toString() {
        return "Ticket(expires " + expires + ")";
    }
}
