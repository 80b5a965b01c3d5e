// Steering: a one-line box, shown while an answer streams, that sends the reader's words to
// the running answer wherever it is generated (`POST /chat/{id}/steer`). The server records
// every accepted message as a `steer` event of the stream, so each tab reading the answer,
// on any server, shows it at the point where the answer changed course.

/** The words of a `steer` event's message (the page sends `{text}`; show anything else as is). */
export function steerText(value) {
  const message = value?.message;
  return typeof message?.text === "string" ? message.text : JSON.stringify(message);
}

export class SteerBox {
  #form;
  #input;
  #list;
  #url;
  #notify;

  constructor({ form, input, list, url, notify }) {
    this.#form = form;
    this.#input = input;
    this.#list = list;
    this.#url = url;
    this.#notify = notify;
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.#send();
    });
  }

  /** Offer the box only while an answer runs: a steer after the end would be refused. */
  setActive(active) {
    this.#form.hidden = !active;
  }

  /** Show the steering messages of this answer so far (after a reload, or a new answer). */
  reset(texts) {
    this.#list.replaceChildren();
    for (const text of texts) this.#append(text);
  }

  /** A `steer` event arrived: one more line under the answer. */
  show(value) {
    this.#append(steerText(value));
  }

  #append(text) {
    const item = document.createElement("li");
    item.textContent = `↪ steered: “${text}”`;
    this.#list.append(item);
    this.#list.hidden = false;
  }

  async #send() {
    const text = this.#input.value.trim();
    if (text === "") return;
    const button = this.#form.querySelector("button");
    button.disabled = true;
    try {
      const response = await fetch(this.#url(), {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ text }),
      });
      if (response.status === 202) {
        this.#input.value = "";
        return;
      }
      const body = await response.json().catch(() => ({}));
      const detail = typeof body.detail === "string" ? body.detail : response.statusText;
      this.#notify(
        response.status === 409 ? "The answer has already finished." : `Not sent: ${detail}`,
      );
    } catch (error) {
      this.#notify(`Not sent: ${error.message}`);
    } finally {
      button.disabled = false;
    }
  }
}
