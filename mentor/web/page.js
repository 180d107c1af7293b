// AI Mentor: what the page does in the browser, beside Gradio's own code.
// Loaded in the page's <head> (mentor.web.create_app); nothing here talks to
// the server. Gradio redraws its components, so everything is found again
// on each change (event delegation and one MutationObserver), never held.
(() => {
  // The question box: a counter once the question nears its limit, and
  // what happens past it (the box keeps the whole question; Send says why).
  const NEAR = 0.8;
  const count = (textarea) => {
    const shown = document.getElementById("question-count");
    if (!shown) return;
    const limit = Number(shown.dataset.limit || 0);
    const length = textarea.value.length;
    const over = length > limit;
    shown.className = over ? "over" : length >= NEAR * limit ? "near" : "";
    shown.textContent =
      length < NEAR * limit
        ? ""
        : over
          ? `${length.toLocaleString("en")} / ${limit.toLocaleString("en")} characters: ` +
            `${(length - limit).toLocaleString("en")} over the limit. Shorten your question to send it.`
          : `${length.toLocaleString("en")} / ${limit.toLocaleString("en")} characters`;
  };
  document.addEventListener("input", (event) => {
    if (event.target.matches && event.target.matches("#question textarea")) count(event.target);
  });

  // Each chat message's label for a screen reader: Gradio puts the
  // message's raw HTML in it (the sources' markup, read out tag by tag).
  // The label is the text itself, without the sources, which follow it.
  const label = (message) => {
    const content = message.querySelector(".message-content");
    if (!content) return;
    const text = content.cloneNode(true);
    text.querySelectorAll(".sources").forEach((sources) => sources.remove());
    const words = text.textContent.replace(/\s+/g, " ").trim().slice(0, 300);
    const who = message.dataset.testid === "user" ? "Your question" : "Mentor";
    const wanted = `${who}: ${words}`;
    if (message.getAttribute("aria-label") !== wanted) message.setAttribute("aria-label", wanted);
  };

  const tidy = () => {
    // The box is emptied by Gradio when a question is sent: no input event.
    const question = document.querySelector("#question textarea");
    if (question) count(question);
    document.querySelectorAll("#chat [data-testid=user][aria-label], #chat [data-testid=bot][aria-label]").forEach(label);
    // The example questions: Gradio marks their row a list of buttons
    // (role=list without listitems, which assistive technology rejects).
    document.querySelectorAll("#chat .examples[role=list]").forEach((row) => row.removeAttribute("role"));
    // The file drop zone: Gradio labels it "Click to upload or drop files",
    // which its visible words ("Drop File Here - or - Click to Upload") do
    // not start with; a voice user says what they see. Its words name it.
    document.querySelectorAll("#console button.boundedheight[aria-label]").forEach((zone) => zone.removeAttribute("aria-label"));
    // The console's Questions for you tab: how many requests are open
    // (the server's count, in the console bar), shown by the stylesheet.
    // Gradio may draw a tab twice (in its overflow menu too): each copy.
    const open = document.querySelector("#open-requests-count .open-requests");
    document.querySelectorAll("#console-tabs button").forEach((tab) => {
      if (!open || !tab.textContent.trim().startsWith("Questions for you")) return;
      if (tab.dataset.open !== open.dataset.open) tab.dataset.open = open.dataset.open;
    });
  };

  let queued = false;
  const soon = () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      tidy();
    });
  };
  const start = () => {
    new MutationObserver(soon).observe(document.body, {
      subtree: true,
      childList: true,
      characterData: true,
      attributes: true,
      attributeFilter: ["aria-label", "role", "data-open"],
    });
    tidy();
  };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
