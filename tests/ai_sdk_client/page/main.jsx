// A chat page as a Vercel AI SDK user writes it: `useChat` with its default transport
// (`POST /api/chat`, `GET /api/chat/{id}/stream`) and `resume: true`. It keeps the chat's
// messages in localStorage, as the page's own store, so a reload starts from what the page
// had shown, partial answer included. Stop follows the SDK's pattern for resumable streams:
// tell the server to cancel, then stop reading.
import { useChat } from "@ai-sdk/react";
import { useEffect, useState } from "react";
import { createRoot } from "react-dom/client";

const params = new URLSearchParams(location.search);
const chatId = params.get("chat") ?? crypto.randomUUID();
const storageKey = `ai-sdk-chat:${chatId}`;
const saved = JSON.parse(localStorage.getItem(storageKey) ?? "[]");

function textOf(message) {
  return message.parts
    .filter((part) => part.type === "text")
    .map((part) => part.text)
    .join("");
}

function Chat() {
  const { messages, sendMessage, stop, status, error } = useChat({
    id: chatId,
    messages: saved,
    resume: true,
  });
  const [input, setInput] = useState("");

  useEffect(() => {
    localStorage.setItem(storageKey, JSON.stringify(messages));
  }, [messages]);

  async function stopAnswer() {
    await fetch(`/api/chat/${encodeURIComponent(chatId)}/cancel`, { method: "POST" });
    await stop();
  }

  return (
    <main>
      <ol id="messages">
        {messages.map((message) => (
          <li key={message.id} data-role={message.role} data-id={message.id}>
            {textOf(message)}
          </li>
        ))}
      </ol>
      <output id="status">{status}</output>
      {error ? <p id="error">{error.message}</p> : null}
      <form
        onSubmit={(event) => {
          event.preventDefault();
          sendMessage({ text: input });
          setInput("");
        }}
      >
        <label>
          Your message
          <input value={input} onChange={(event) => setInput(event.target.value)} />
        </label>
        <button type="submit" disabled={status !== "ready"}>
          Send
        </button>
        <button type="button" onClick={stopAnswer}>
          Stop
        </button>
      </form>
    </main>
  );
}

createRoot(document.getElementById("root")).render(<Chat />);
