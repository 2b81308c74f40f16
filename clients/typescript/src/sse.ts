/**
 * A Server-Sent Events parser (the WHATWG HTML standard's "event stream interpretation"), fed
 * text as it arrives, in pieces of any size.
 */

/** One dispatched event. */
export interface SseEvent {
  /** `event:` (default `message`). */
  type: string;
  /** The `data:` lines joined with newlines. */
  data: string;
  /** The last event id after this event (`id:`, kept from earlier events when absent). */
  lastEventId: string;
}

export class SseParser {
  private buffer = "";
  private started = false;
  private data: string[] = [];
  private type = "";
  private dataSeen = false;
  /** The `id:` being read (kept across events, as the standard says). */
  private idBuffer = "";
  /**
   * The last event id as of the last blank line: set by a block with an `id:` even when it has
   * no `data:` (which dispatches no event), as an `EventSource`'s `lastEventId` is.
   */
  lastEventId = "";
  /** The last valid `retry:` (milliseconds), if any. */
  retry: number | undefined;

  /** Feeds text; answers the events it completes. */
  push(text: string): SseEvent[] {
    this.buffer += text;
    if (!this.started && this.buffer.length > 0) {
      this.started = true;
      if (this.buffer.charCodeAt(0) === 0xfeff) this.buffer = this.buffer.slice(1);
    }
    const events: SseEvent[] = [];
    let start = 0;
    for (;;) {
      let end = -1;
      for (let i = start; i < this.buffer.length; i++) {
        const c = this.buffer.charCodeAt(i);
        if (c === 10 || c === 13) {
          end = i;
          break;
        }
      }
      if (end === -1) break;
      let next = end + 1;
      if (this.buffer.charCodeAt(end) === 13) {
        // A CR at the very end may be the first half of CRLF: wait for the next piece.
        if (end + 1 === this.buffer.length) break;
        if (this.buffer.charCodeAt(end + 1) === 10) next = end + 2;
      }
      const event = this.line(this.buffer.slice(start, end));
      if (event) events.push(event);
      start = next;
    }
    this.buffer = this.buffer.slice(start);
    return events;
  }

  /** The stream ended: an incomplete event is dropped (as the standard says); a lone CR ends its line. */
  end(): SseEvent[] {
    const events: SseEvent[] = [];
    if (this.buffer.endsWith("\r")) {
      const event = this.line(this.buffer.slice(0, -1));
      if (event) events.push(event);
    }
    this.buffer = "";
    this.data = [];
    this.type = "";
    this.dataSeen = false;
    return events;
  }

  private line(line: string): SseEvent | null {
    if (line.length === 0) return this.dispatch();
    if (line.charCodeAt(0) === 58 /* : */) return null; // a comment (keep-alive)
    const colon = line.indexOf(":");
    let field: string;
    let value: string;
    if (colon === -1) {
      field = line;
      value = "";
    } else {
      field = line.slice(0, colon);
      value = line.slice(colon + 1);
      if (value.charCodeAt(0) === 32) value = value.slice(1);
    }
    switch (field) {
      case "event":
        this.type = value;
        break;
      case "data":
        this.data.push(value);
        this.dataSeen = true;
        break;
      case "id":
        if (!value.includes("\u0000")) this.idBuffer = value;
        break;
      case "retry":
        if (/^\d+$/.test(value)) this.retry = parseInt(value, 10);
        break;
      default:
        break; // ignored, as the standard says
    }
    return null;
  }

  private dispatch(): SseEvent | null {
    this.lastEventId = this.idBuffer;
    const seen = this.dataSeen;
    const event: SseEvent = { type: this.type || "message", data: this.data.join("\n"), lastEventId: this.lastEventId };
    this.data = [];
    this.type = "";
    this.dataSeen = false;
    return seen ? event : null;
  }
}
