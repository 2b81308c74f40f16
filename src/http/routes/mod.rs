//! Handlers, one module per route family, each reading like API.md's table; and [`api`], the
//! table of every route, from which both the router and the OpenAPI document are made.

pub mod account;
pub mod admin;
pub mod auth;
pub mod events;
pub mod meta;
pub mod revocations;
pub mod tickets;
pub mod users;

use serde::Deserialize;

use super::openapi::{__path_openapi, openapi, Access, Api, Failure, JSON_BODY};

/// `{"username", "password"}`, the body of `POST /users` and `POST /auth`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// 3 to 20 characters of A-Z a-z 0-9 _ (a sign-up refuses others with a 400; a sign-in
    /// matches regardless of case).
    #[schema(examples("Bill"))]
    pub username: String,
    /// At least `password.min_length` (12) characters after NFKC normalisation, at most 1024
    /// bytes, not too easily guessed (checked at sign-up).
    #[schema(examples("correct horse battery staple"))]
    pub password: String,
}

/// Every route: the router and the document are both made from this table.
pub fn api() -> Api {
    use Access::*;
    use Failure::*;
    const SIGN_IN_THROTTLE: Failure = Throttled(
        "too many failed sign-ins for this account or from this client network (a correct password \
         is refused too while it lasts)",
    );
    const PASSWORD_THROTTLE: Failure =
        Throttled("too many failed sign-ins for this account or from this client network");
    const BAD_ID: Failure = NotFound("no user with that id (anything that is not a UUID included)");
    Api::new()
        .route(meta::__path_index, meta::index, Public, &[])
        .route(meta::__path_health, meta::health, Public, &[&[DatabaseDown]])
        .route(meta::__path_ready, meta::ready, Public, &[&[NotReady]])
        .bare(meta::__path_metrics, meta::metrics, Public, &[])
        .bare(__path_openapi, openapi, Public, &[])
        .bare(account::__path_page, account::page, Public, &[])
        .bare(account::__path_script, account::script, Public, &[])
        .bare(account::__path_style, account::style, Public, &[])
        .route(
            users::__path_sign_up,
            users::sign_up,
            Public,
            &[
                JSON_BODY,
                &[
                    Invalid(
                        "an invalid username (`username: …`: 3 to 20 characters of A-Z a-z 0-9 _) or a password \
                         refused (`password: …`: too short, too long, control characters, or too easily guessed, \
                         saying why)",
                    ),
                    UsernameTaken,
                    Throttled("too many sign-up attempts from this client network (`throttle.signups_per_network`) or its wide network, IPv4 /16 or IPv6 /48 (`throttle.signups_per_wide_network`)"),
                    Unavailable,
                ],
            ],
        )
        .route(users::__path_me, users::me, Player, &[])
        .route(
            users::__path_delete_me,
            users::delete_me,
            Player,
            &[JSON_BODY, &[InvalidPassword, PASSWORD_THROTTLE, LastAdmin]],
        )
        .route(
            users::__path_change_password,
            users::change_password,
            Player,
            &[
                JSON_BODY,
                &[
                    Invalid(
                        "the new password is refused (`new_password: …`: too short, too long, control characters, \
                         or too easily guessed), whether or not `current_password` was right",
                    ),
                    InvalidPassword,
                    PASSWORD_THROTTLE,
                ],
            ],
        )
        .route(
            auth::__path_sign_in,
            auth::sign_in,
            Public,
            &[
                JSON_BODY,
                &[InvalidCredentials, Suspended, TooManyKeys, SIGN_IN_THROTTLE, Unavailable],
            ],
        )
        .route(
            users::__path_reset_password,
            users::reset_password,
            Public,
            &[
                JSON_BODY,
                &[
                    Invalid(
                        "the new password is refused (`new_password: …`: too short, too long, control characters, \
                         or too easily guessed); said only when the code is right, which is then not spent",
                    ),
                    InvalidResetCode,
                    Suspended,
                    SIGN_IN_THROTTLE,
                    Unavailable,
                ],
            ],
        )
        .route(auth::__path_validate, auth::validate, Player, &[])
        .route(auth::__path_sign_out, auth::sign_out, Player, &[&[Query]])
        .route(auth::__path_list_keys, auth::list_keys, Player, &[])
        .route(
            auth::__path_revoke_key,
            auth::revoke_key,
            Player,
            &[&[NotFound(
                "no live key of yours with that id (anything that is not a UUID included)",
            )]],
        )
        .route(
            tickets::__path_ask,
            tickets::ask,
            Player,
            &[&[NoBody, TooLarge, NotJson]],
        )
        .route(
            tickets::__path_redeem,
            tickets::redeem,
            Service,
            &[JSON_BODY, &[InvalidTicket]],
        )
        .route(admin::__path_list_users, admin::list_users, Admin, &[&[Query]])
        .route(admin::__path_get_user, admin::get_user, Admin, &[&[BAD_ID]])
        .route(
            admin::__path_delete_user,
            admin::delete_user,
            Admin,
            &[&[BAD_ID, LastAdmin]],
        )
        .route(admin::__path_revoke_keys, admin::revoke_keys, Admin, &[&[BAD_ID]])
        .route(
            admin::__path_suspend,
            admin::suspend,
            Admin,
            &[
                JSON_BODY,
                &[
                    Invalid(
                        "`reason: …` (1 to 200 characters, not blank, no control characters) or `until: …` \
                         (not an RFC 3339 date-time, or not in the future)",
                    ),
                    BAD_ID,
                    LastAdmin,
                ],
            ],
        )
        .route(
            admin::__path_unsuspend,
            admin::unsuspend,
            Admin,
            &[&[NotFound(
                "no user with that id, or no suspension in force to lift",
            )]],
        )
        .route(
            admin::__path_issue_reset_code,
            admin::issue_reset_code,
            Admin,
            &[
                JSON_BODY,
                &[
                    Invalid(
                        "`lifetime: …` is not a duration, or not within 0s (excluded) to 7d; or the user is a \
                         service account (no password to reset)",
                    ),
                    BAD_ID,
                ],
            ],
        )
        .route(events::__path_admin_events, events::admin_events, Admin, &[&[Query]])
        .route(events::__path_own_events, events::own_events, Player, &[&[Query]])
        .bare(
            revocations::__path_stream,
            revocations::stream,
            Service,
            &[&[Invalid(
                "`after: …` or `Last-Event-ID: …` is not a revocation `seq` (a non-negative integer)",
            )]],
        )
        // The types the attributes above name (`request_body`, `body = T`), route by route, and
        // the stream's events (`RevocationEvent`, named in its description only). utoipa tells
        // which types an attribute names only through its hidden API, so they are listed here;
        // the tests check that every `$ref` in the document resolves (a type left out fails
        // them) and that no two types share a name.
        .schema::<meta::About>()
        .schema::<meta::Health>()
        .schema::<meta::Readiness>()
        .schema::<Credentials>()
        .schema::<users::SignedUp>()
        .schema::<users::Me>()
        .schema::<users::PasswordConfirmation>()
        .schema::<users::PasswordChange>()
        .schema::<users::NewKey>()
        .schema::<auth::Issued>()
        .schema::<users::PasswordReset>()
        .schema::<auth::Validated>()
        .schema::<auth::KeyList>()
        .schema::<tickets::NoFields>()
        .schema::<tickets::Issued>()
        .schema::<tickets::Redeem>()
        .schema::<tickets::Redeemed>()
        .schema::<admin::UserPage>()
        .schema::<admin::UserDetails>()
        .schema::<admin::SuspensionBody>()
        .schema::<admin::SuspensionAnswer>()
        .schema::<admin::ResetCodeBody>()
        .schema::<admin::ResetCodeAnswer>()
        .schema::<events::EventPage>()
        .schema::<crate::domain::FeedEntry>()
}
