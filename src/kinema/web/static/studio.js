// Kinema studio: progress of running jobs on every page (polling the same /v1 API the SDK uses, with the
// session cookie), live progress on a video's page, and small conveniences. No inline script anywhere.
"use strict";

(function () {
  const ACTIVE = new Set(["queued", "in_progress"]);

  function pollDelay(response, fallback) {
    const ms = Number(response && response.headers.get("openai-poll-after-ms"));
    return Number.isFinite(ms) && ms >= 100 ? ms : fallback;
  }

  function later(fn, ms) {
    window.setTimeout(fn, document.hidden ? Math.max(ms, 5000) : ms);
  }

  async function getJSON(url) {
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!response.ok) {
      return { response, data: null };
    }
    return { response, data: await response.json() };
  }

  // The model picker reloads the form with that model's sizes and seconds.
  for (const select of document.querySelectorAll("select[data-autosubmit]")) {
    select.addEventListener("change", () => select.form.submit());
  }

  // @name suggestions on the create form: the likenesses the viewer may use, from the page's datalist.
  // Typing "@" and the start of a name lists the matches as buttons under the prompt; one inserts the name.
  const names = document.getElementById("mention-names");
  const promptBox = names && document.getElementById(names.dataset.for);
  const suggest = document.getElementById("mention-suggest");
  const choices = document.getElementById("mention-options");
  const said = document.getElementById("mention-status");
  if (promptBox && suggest && choices && said) {
    const all = Array.from(names.options, (o) => o.value.replace(/^@/, ""));
    const AT_CARET = /(^|[^\w@])@([a-z0-9_.-]*)$/i;
    let caret = 0;
    let part = "";
    const hide = () => {
      suggest.hidden = true;
      choices.replaceChildren();
    };
    const insert = (name) => {
      const start = caret - part.length; // just after the "@"
      const rest = promptBox.value.slice(caret);
      const text = name + (rest.startsWith(" ") ? "" : " ");
      promptBox.value = promptBox.value.slice(0, start) + text + rest;
      hide();
      said.textContent = "Inserted @" + name + ".";
      promptBox.focus();
      promptBox.setSelectionRange(start + text.length, start + text.length);
    };
    const update = () => {
      caret = promptBox.selectionStart;
      const match = AT_CARET.exec(promptBox.value.slice(0, caret));
      if (!match) {
        hide();
        return;
      }
      part = match[2];
      const found = all.filter((n) => n.toLowerCase().startsWith(part.toLowerCase()));
      if (!found.length) {
        hide();
        said.textContent = "No likeness you may use starts with @" + part + ".";
        return;
      }
      choices.replaceChildren(
        ...found.map((name) => {
          const li = document.createElement("li");
          const button = document.createElement("button");
          button.type = "button";
          button.className = "secondary small";
          button.textContent = "@" + name;
          button.addEventListener("click", () => insert(name));
          li.append(button);
          return li;
        })
      );
      suggest.hidden = false;
      said.textContent = found.length + (found.length === 1 ? " likeness matches." : " likenesses match.");
    };
    promptBox.addEventListener("input", update);
    promptBox.addEventListener("keydown", (e) => {
      if (suggest.hidden) return;
      if (e.key === "ArrowDown") {
        e.preventDefault();
        choices.querySelector("button").focus();
      } else if (e.key === "Escape") {
        e.preventDefault();
        hide();
      }
    });
    choices.addEventListener("keydown", (e) => {
      const buttons = Array.from(choices.querySelectorAll("button"));
      const at = buttons.indexOf(document.activeElement);
      if (e.key === "Escape") {
        e.preventDefault();
        hide();
        promptBox.focus();
      } else if ((e.key === "ArrowDown" || e.key === "ArrowRight") && at >= 0) {
        e.preventDefault();
        buttons[Math.min(at + 1, buttons.length - 1)].focus();
      } else if ((e.key === "ArrowUp" || e.key === "ArrowLeft") && at >= 0) {
        e.preventDefault();
        if (at === 0) promptBox.focus();
        else buttons[at - 1].focus();
      }
    });
  }

  // Running jobs, on every signed-in page (so every open tab shows them).
  const tray = document.getElementById("jobs");
  const trayList = document.getElementById("jobs-list");
  async function refreshTray() {
    let ok = false;
    try {
      const { data } = await getJSON("/v1/videos?limit=20");
      if (data) {
        ok = true;
        const active = data.data.filter((v) => ACTIVE.has(v.status));
        trayList.replaceChildren(
          ...active.map((v) => {
            const li = document.createElement("li");
            const a = document.createElement("a");
            a.href = "/videos/" + encodeURIComponent(v.id);
            a.textContent = (v.prompt || v.id).slice(0, 40);
            const bar = document.createElement("progress");
            bar.max = 100;
            bar.value = v.progress;
            bar.setAttribute("aria-label", "Progress of " + a.textContent);
            const pct = document.createElement("span");
            pct.textContent = v.progress + "%";
            li.append(a, bar, pct);
            return li;
          })
        );
        tray.hidden = active.length === 0;
      }
    } catch (err) {
      ok = false; // offline or the server restarting: try again later
    }
    later(refreshTray, ok ? 2000 : 10000);
  }
  if (tray && trayList) {
    refreshTray();
  }

  // One video's page: progress until it ends, then reload to show the player (or the error).
  const state = document.getElementById("video-state");
  if (state && ACTIVE.has(state.dataset.status)) {
    const id = state.dataset.videoId;
    const fallback = Number(state.dataset.pollMs) || 1000;
    const bar = document.getElementById("video-progress");
    const text = document.getElementById("video-progress-text");
    const label = document.getElementById("video-status");
    async function poll() {
      let delay = fallback;
      try {
        const { response, data } = await getJSON("/v1/videos/" + encodeURIComponent(id));
        delay = pollDelay(response, fallback);
        if (data) {
          if (bar) bar.value = data.progress;
          if (text) text.textContent = data.progress + "%";
          if (label) label.textContent = data.status.replace("_", " ");
          if (!ACTIVE.has(data.status)) {
            window.location.reload();
            return;
          }
        } else if (response.status === 404 || response.status === 401) {
          window.location.reload();
          return;
        }
      } catch (err) {
        delay = Math.max(delay, 5000);
      }
      later(poll, delay);
    }
    later(poll, fallback);
  }
})();
