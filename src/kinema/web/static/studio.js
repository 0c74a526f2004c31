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

  // Library: a completed video's thumbnail previews its frames from the spritesheet (GET .../content?variant=
  // spritesheet: data-tiles frames on data-columns x data-rows tiles, left to right, top to bottom) under the
  // pointer, or with the arrow keys while its link has focus. A layer over the thumbnail shows one tile, cut
  // like the thumbnail (object-fit: cover), so nothing moves; without script the plain thumbnail stays.
  const scrubs = document.querySelectorAll(".scrub-frame[data-sprite]");
  if (scrubs.length) {
    const help = document.createElement("p");
    help.id = "scrub-help";
    help.className = "visually-hidden";
    help.textContent = "Left and right arrow keys preview the video's frames.";
    document.body.append(help);
  }
  for (const frame of scrubs) {
    const link = frame.closest("a");
    const tiles = Math.max(1, Number(frame.dataset.tiles) || 1);
    const columns = Math.max(1, Number(frame.dataset.columns) || 1);
    const rows = Math.max(1, Number(frame.dataset.rows) || 1);
    const [vw, vh] = frame.dataset.aspect.split("x").map(Number);
    const aspect = vw > 0 && vh > 0 ? vw / vh : 16 / 9;
    let layer = null;
    let index = 0;
    const show = (i) => {
      index = Math.min(tiles - 1, Math.max(0, i));
      if (!layer) {
        layer = document.createElement("span");
        layer.className = "scrub";
        layer.setAttribute("aria-hidden", "true");
        layer.style.backgroundImage = 'url("' + frame.dataset.sprite + '")';
        frame.append(layer);
      }
      const boxW = frame.clientWidth;
      const boxH = frame.clientHeight;
      let tw = boxW;
      let th = boxW / aspect;
      if (th < boxH) {
        th = boxH;
        tw = boxH * aspect;
      }
      const col = index % columns;
      const row = Math.floor(index / columns);
      layer.style.backgroundSize = tw * columns + "px " + th * rows + "px";
      layer.style.backgroundPosition = (boxW - tw) / 2 - col * tw + "px " + ((boxH - th) / 2 - row * th) + "px";
      layer.classList.add("on");
      frame.dataset.frame = String(index);
    };
    const hide = () => {
      index = 0;
      if (layer) layer.classList.remove("on");
      delete frame.dataset.frame;
    };
    frame.addEventListener("pointermove", (e) => {
      const box = frame.getBoundingClientRect();
      show(Math.floor(((e.clientX - box.left) / Math.max(box.width, 1)) * tiles));
    });
    frame.addEventListener("pointerleave", () => {
      if (document.activeElement !== link) hide();
    });
    if (link) {
      link.setAttribute("aria-describedby", "scrub-help");
      link.addEventListener("focus", () => show(index));
      link.addEventListener("blur", hide);
      link.addEventListener("keydown", (e) => {
        const to = { ArrowRight: index + 1, ArrowLeft: index - 1, Home: 0, End: tiles - 1 }[e.key];
        if (to !== undefined) {
          e.preventDefault();
          show(to);
        } else if (e.key === "Escape") {
          hide();
        }
      });
    }
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
