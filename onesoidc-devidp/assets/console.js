// onesoidc dev-idp: the console and the phone page. Plain JavaScript, no
// build step. Sections are rendered (and escaped) by the provider; this
// script only swaps in the ones that changed, counts down, and sends the
// buttons' POSTs with the page's token.
(() => {
  "use strict";
  const token = document.querySelector('meta[name="devidp-console-token"]').content;
  const toast = document.getElementById("toast");
  const liveStatus = document.getElementById("live-status");
  let toastTimer;

  function say(text, ok) {
    toast.textContent = text;
    toast.className = ok ? "show" : "show err";
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { toast.className = ""; }, 4000);
  }

  function countdown() {
    const now = Date.now();
    for (const el of document.querySelectorAll("[data-expires-at]")) {
      const left = Math.max(0, Math.ceil((Number(el.dataset.expiresAt) - now) / 1000));
      el.textContent = left >= 120 ? `${Math.floor(left / 60)} min ${left % 60} s` : `${left} s`;
      el.classList.toggle("soon", left <= 15);
    }
  }

  function localTimes(root) {
    for (const el of root.querySelectorAll("time[data-at]")) {
      el.textContent = new Date(Number(el.dataset.at)).toLocaleTimeString();
      el.title = new Date(Number(el.dataset.at)).toISOString();
    }
  }

  function setButtons(scope, enabled) {
    for (const b of scope.querySelectorAll("button[data-post]")) {
      if (!("needsUser" in b.dataset) || document.querySelector('[data-user][aria-checked="true"]')) {
        b.disabled = !enabled;
      }
    }
  }

  async function post(button) {
    let body;
    if ("needsUser" in button.dataset) {
      const chosen = document.querySelector('button[data-user][aria-checked="true"]');
      if (!chosen) return;
      body = { username: chosen.dataset.user };
    } else if (button.dataset.username) {
      body = { username: button.dataset.username };
    }
    const scope = button.closest("[data-row], .state") || button.parentElement;
    setButtons(scope, false);
    const headers = { "X-DevIdp-Console-Token": token };
    if (body) headers["Content-Type"] = "application/json";
    try {
      const response = await fetch(button.dataset.post, {
        method: "POST",
        headers,
        body: body ? JSON.stringify(body) : undefined,
        credentials: "same-origin",
        cache: "no-store",
      });
      const answer = await response.json().catch(() => ({}));
      if (response.ok) {
        say(answer.message || "Done.", true);
      } else {
        say(answer.error_description || `The provider answered HTTP ${response.status}.`, false);
        setButtons(scope, true);
      }
    } catch (e) {
      say(`The provider did not answer: ${e.message}`, false);
      setButtons(scope, true);
    }
  }

  document.addEventListener("click", (event) => {
    const user = event.target.closest("button[data-user]");
    if (user) {
      for (const b of document.querySelectorAll("button[data-user]")) {
        b.setAttribute("aria-checked", String(b === user));
      }
      const confirm = document.querySelector("button[data-needs-user]");
      if (confirm) {
        confirm.disabled = false;
        confirm.textContent = `Confirm as ${user.dataset.user}`;
      }
      return;
    }
    const button = event.target.closest("button[data-post]");
    if (button && !button.disabled) post(button);
  });

  function connect() {
    const source = new EventSource(document.body.dataset.live);
    source.addEventListener("sections", (event) => {
      const sections = JSON.parse(event.data);
      for (const [id, section] of Object.entries(sections)) {
        const el = document.getElementById(id);
        if (!el || el.dataset.hash === section.hash) continue;
        el.innerHTML = section.html;
        el.dataset.hash = section.hash;
        localTimes(el);
      }
      countdown();
    });
    source.addEventListener("open", () => {
      if (liveStatus) { liveStatus.textContent = "live"; liveStatus.classList.remove("off"); }
    });
    source.addEventListener("error", () => {
      if (liveStatus) { liveStatus.textContent = "reconnecting…"; liveStatus.classList.add("off"); }
    });
  }

  localTimes(document);
  countdown();
  setInterval(countdown, 1000);
  connect();
})();
