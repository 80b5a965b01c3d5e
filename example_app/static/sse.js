// A parser for `text/event-stream`, following the WHATWG HTML "event stream interpretation".
//
// The page reads SSE with `fetch` rather than `EventSource` because it needs to POST the prompt,
// choose its own reconnection policy and see HTTP status codes (204, 404). Feed it decoded text
// (a streaming `TextDecoder` already drops a leading BOM); it calls `onEvent` for each complete
// event and `onRetry` for each valid `retry:` field. Lines may end in CRLF, LF or CR, and a CRLF
// may be split across two chunks. An event cut off by the end of the stream is never dispatched.

export class SseParser {
  #line = "";
  #afterCR = false;
  #data = "";
  #eventType = "";
  #lastEventId = "";

  /**
   * @param {{onEvent: (event: {type: string, data: string, lastEventId: string}) => void,
   *          onRetry?: (ms: number) => void}} handlers
   */
  constructor({ onEvent, onRetry = () => {} }) {
    this.onEvent = onEvent;
    this.onRetry = onRetry;
  }

  /** Parse the next piece of the stream. */
  feed(text) {
    let start = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text[i];
      if (c === "\n" && this.#afterCR) {
        // The LF of a CRLF whose CR ended the previous line.
        this.#afterCR = false;
        start = i + 1;
        continue;
      }
      this.#afterCR = c === "\r";
      if (c === "\r" || c === "\n") {
        const line = this.#line + text.slice(start, i);
        this.#line = "";
        start = i + 1;
        this.#processLine(line);
      }
    }
    this.#line += text.slice(start);
  }

  #processLine(line) {
    if (line === "") {
      this.#dispatch();
      return;
    }
    if (line.startsWith(":")) return; // a comment, such as a keep-alive
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    switch (field) {
      case "event":
        this.#eventType = value;
        break;
      case "data":
        this.#data += value + "\n";
        break;
      case "id":
        if (!value.includes("\0")) this.#lastEventId = value;
        break;
      case "retry":
        if (/^[0-9]+$/.test(value)) this.onRetry(Number(value));
        break;
      default:
        break; // unknown fields are ignored
    }
  }

  #dispatch() {
    if (this.#data === "") {
      this.#eventType = "";
      return;
    }
    const event = {
      type: this.#eventType || "message",
      data: this.#data.slice(0, -1), // drop the LF appended after the last data line
      lastEventId: this.#lastEventId,
    };
    this.#data = "";
    this.#eventType = "";
    this.onEvent(event);
  }
}
