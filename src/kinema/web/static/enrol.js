// Webcam enrolment: consent fields, a challenge from POST /v1/videos/characters/challenges, the camera
// (getUserMedia), a live face guide, a recording (MediaRecorder) driven step by step by that guide, and the
// upload of the recording as it came from the camera (unmirrored: only the on-screen preview is mirrored) to
// POST /v1/videos/characters.
//
// The guide: a few times a second a small unmirrored frame goes to POST /likeness/guide, which answers the face
// box and a hint in the enrolment check's own terms. The box is drawn over the preview (mirrored like it), the
// hint is spoken through a live region when it changes. Recording starts once the face is found and centred;
// a turn step ends once the guide says the turn is far enough and held, or after MAX_TURN_MS whatever it says.
"use strict";

(function () {
  const form = document.getElementById("enrol-form");
  if (!form) return;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const startButton = document.getElementById("enrol-start");
  const recordButton = document.getElementById("enrol-record");
  const camera = document.getElementById("enrol-camera");
  const preview = document.getElementById("enrol-preview");
  const overlay = document.getElementById("enrol-overlay");
  const hintLine = document.getElementById("enrol-hint");
  const steps = document.getElementById("enrol-steps");
  const status = document.getElementById("enrol-status");
  const FRAME_WIDTH = 320; // px of the frames sent to the guide
  const FRAME_EVERY_MS = 250; // at most 4 frames a second (the server allows a few more)
  const REST_MS = 1000; // how long "look straight" is held to measure the resting pose
  const MAX_REST_MS = 4000;
  const GOOD_IN_A_ROW = 2; // guide answers saying "good" that make a turn "held"
  const MAX_TURN_MS = 8000; // a turn step ends after this even if the guide never said "good"
  const MAX_BACK_MS = 4000;
  const TAIL_MS = 500; // recorded after the last step
  const MAX_START_MS = 20000; // recording starts after this even if the guide never saw a centred face
  let challenge = null;
  let stream = null;
  const guide = { running: false, target: "straight", rest: null, listener: null, shown: "" };

  function say(text) {
    status.textContent = text;
  }

  function sleep(ms) {
    return new Promise((resolve) => window.setTimeout(resolve, ms));
  }

  async function api(path, body, headers) {
    const response = await fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: Object.assign({ "X-CSRF-Token": csrf, Accept: "application/json" }, headers || {}),
      body: body,
    });
    const data = await response.json().catch(() => null);
    if (!response.ok) {
      const message = data && data.error ? data.error.message : "The server answered " + response.status + ".";
      const err = new Error(message);
      err.status = response.status;
      throw err;
    }
    return data;
  }

  // -- the guide ------------------------------------------------------------------------------------------

  const grabber = document.createElement("canvas");

  function grab() {
    // The camera's own (unmirrored) pixels: drawImage ignores the preview's CSS mirroring.
    const w = preview.videoWidth;
    const h = preview.videoHeight;
    if (!w || !h) return Promise.resolve(null);
    grabber.width = Math.min(FRAME_WIDTH, w);
    grabber.height = Math.round((grabber.width * h) / w);
    grabber.getContext("2d").drawImage(preview, 0, 0, grabber.width, grabber.height);
    return new Promise((resolve) => grabber.toBlob(resolve, "image/jpeg", 0.7));
  }

  function draw(answer) {
    const w = preview.videoWidth || 640;
    const h = preview.videoHeight || 480;
    if (overlay.width !== w || overlay.height !== h) {
      overlay.width = w;
      overlay.height = h;
    }
    const ctx = overlay.getContext("2d");
    ctx.clearRect(0, 0, w, h);
    if (!answer || !answer.box) {
      overlay.dataset.face = "none";
      return;
    }
    const ok = answer.hint === "hold" || answer.hint === "good";
    const b = answer.box;
    ctx.lineWidth = Math.max(3, w / 160);
    ctx.setLineDash(ok ? [] : [w / 40, w / 80]); // solid when right, dashed when not: not colour alone
    ctx.strokeStyle = ok ? "#2ecc40" : "#ffb700";
    ctx.strokeRect(b.left * w, b.top * h, (b.right - b.left) * w, (b.bottom - b.top) * h);
    overlay.dataset.face = ok ? "ok" : "adjust";
  }

  function hint(text) {
    // Only when it changes: a live region repeating itself four times a second is noise.
    if (text !== guide.shown) {
      guide.shown = text;
      hintLine.textContent = text;
    }
  }

  async function guideLoop() {
    while (guide.running) {
      const started = performance.now();
      let pause = FRAME_EVERY_MS;
      try {
        const frame = await grab();
        if (frame) {
          const rest = guide.rest === null ? "" : "&rest=" + guide.rest.toFixed(4);
          const query = "?target=" + guide.target + rest;
          const answer = await api("/likeness/guide" + query, frame, { "Content-Type": "image/jpeg" });
          draw(answer);
          hint(answer.message);
          if (guide.listener) guide.listener(answer);
        }
      } catch (err) {
        draw(null);
        hint("The guide is not available: " + err.message);
        if (err.status === 429) pause = 1000;
        else if (err.status === 401 || err.status === 403) {
          guide.running = false; // signed out: reloading the page says so
          return;
        } else {
          pause = 2000;
          // A guide that fails must not hold the person up: a wait for "hold still" goes on without it.
          if (guide.listener) guide.listener({ hint: "unavailable" });
        }
      }
      await sleep(Math.max(0, pause - (performance.now() - started)));
    }
  }

  function startGuide() {
    if (guide.running) return;
    guide.running = true;
    guideLoop();
  }

  function stopGuide() {
    guide.running = false;
    guide.listener = null;
    draw(null);
  }

  // The next guide answer that passes test, or null after maxMs (Infinity: no limit).
  function until(target, rest, test, maxMs) {
    guide.target = target;
    guide.rest = rest;
    return new Promise((resolve) => {
      const timer = Number.isFinite(maxMs)
        ? window.setTimeout(() => {
            guide.listener = null;
            resolve(null);
          }, maxMs)
        : null;
      guide.listener = (answer) => {
        if (!test(answer)) return;
        if (timer !== null) window.clearTimeout(timer);
        guide.listener = null;
        resolve(answer);
      };
    });
  }

  // -- steps ----------------------------------------------------------------------------------------------

  function plan(moves) {
    const items = [{ target: "straight", text: "Look straight at the camera" }];
    for (const move of moves) {
      items.push({ target: move, text: "Turn your head to your " + move + ", then hold" });
      items.push({ target: "straight", text: "Back to the camera" });
    }
    return items;
  }

  function showSteps(items) {
    steps.replaceChildren(
      ...items.map((item) => {
        const li = document.createElement("li");
        li.textContent = item.text;
        return li;
      })
    );
  }

  function highlight(index) {
    steps.querySelectorAll("li").forEach((li, i) => {
      if (i === index) li.setAttribute("aria-current", "step");
      else li.removeAttribute("aria-current");
    });
  }

  async function restingPose() {
    const yaws = [];
    const since = performance.now();
    await until(
      "straight",
      null,
      (a) => {
        if (a.hint === "hold") yaws.push(a.yaw);
        return yaws.length >= 2 && performance.now() - since >= REST_MS;
      },
      MAX_REST_MS
    );
    if (!yaws.length) return null;
    yaws.sort((x, y) => x - y);
    return yaws[Math.floor(yaws.length / 2)];
  }

  // Ends when the turn is far enough and held; also when it was far enough once and the person has turned
  // back already (the recording holds the turn, which is what the check needs). False: never seen.
  async function turn(direction, rest) {
    let inARow = 0;
    let seen = false;
    const ended = await until(
      direction,
      rest,
      (a) => {
        inARow = a.hint === "good" ? inARow + 1 : 0;
        seen = seen || inARow > 0;
        return inARow >= GOOD_IN_A_ROW || (seen && a.hint === "turn_further");
      },
      MAX_TURN_MS
    );
    return ended !== null;
  }

  async function followSteps(items) {
    let rest = null;
    let unseen = 0;
    for (let i = 0; i < items.length; i += 1) {
      highlight(i);
      steps.dataset.step = String(i);
      if (i === 0) rest = await restingPose();
      else if (items[i].target === "straight") await until("straight", rest, (a) => a.hint === "hold", MAX_BACK_MS);
      else if (!(await turn(items[i].target, rest))) unseen += 1;
    }
    guide.target = "straight";
    await sleep(TAIL_MS);
    return unseen;
  }

  function recorderFor(mediaStream) {
    // MP4 first, where the browser records it (H.264 with its real rate). MediaRecorder's WebM carries no
    // frame rate (a 1 ms time base): the server takes the rate from the frames' timestamps instead.
    const type = ["video/mp4;codecs=avc1", "video/mp4", "video/webm;codecs=vp8", "video/webm"].find((t) =>
      MediaRecorder.isTypeSupported(t)
    );
    return new MediaRecorder(mediaStream, type ? { mimeType: type } : undefined);
  }

  async function record() {
    say("Look straight at the camera, your face in the middle: recording starts when the guide says hold still.");
    const ready = await until("straight", null, (a) => a.hint === "hold" || a.hint === "unavailable", MAX_START_MS);
    const guided = ready !== null && ready.hint === "hold";
    const recorder = recorderFor(stream);
    const chunks = [];
    const stopped = new Promise((resolve, reject) => {
      recorder.addEventListener("dataavailable", (e) => e.data.size && chunks.push(e.data));
      recorder.addEventListener("stop", () => resolve(new Blob(chunks, { type: recorder.mimeType })));
      recorder.addEventListener("error", (e) => reject(e.error || new Error("recording failed")));
    });
    recorder.start(250);
    say(guided ? "Recording: follow the highlighted step and the guide." : "Recording without the guide: follow the highlighted steps.");
    const unseen = await followSteps(plan(challenge.moves));
    recorder.stop();
    return { clip: await stopped, unseen: unseen };
  }

  // -- the page -------------------------------------------------------------------------------------------

  startButton.addEventListener("click", async () => {
    if (!form.reportValidity()) return;
    startButton.disabled = true;
    try {
      challenge = await api("/v1/videos/characters/challenges", null);
      showSteps(plan(challenge.moves));
      say(challenge.instruction + " Press Record when you are ready.");
      stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
      preview.srcObject = stream;
      await preview.play();
      camera.hidden = false;
      startGuide();
      recordButton.disabled = false;
      recordButton.focus();
    } catch (err) {
      say("Could not start: " + err.message);
      startButton.disabled = false;
    }
  });

  recordButton.addEventListener("click", async () => {
    recordButton.disabled = true;
    try {
      const { clip, unseen } = await record();
      highlight(-1);
      delete steps.dataset.step;
      say((unseen ? "The guide did not see every turn; checking anyway. " : "") + "Checking your clip…");
      const data = new FormData();
      data.append("name", form.elements.name.value);
      data.append("challenge_id", challenge.id);
      data.append("mirrored", "false");
      data.append("consent[text_version]", form.dataset.consentVersion);
      for (const box of form.querySelectorAll('input[name="purposes"]:checked')) {
        data.append("consent[purposes][]", box.value);
      }
      data.append("consent[retention_days]", form.elements.retention_days.value);
      data.append("consent[signature]", form.elements.signature.value);
      data.append("video", clip, clip.type.includes("mp4") ? "enrol.mp4" : "enrol.webm");
      await api("/v1/videos/characters", data);
      stopGuide();
      say("Enrolled. Loading your likeness…");
      stream.getTracks().forEach((t) => t.stop());
      window.location.reload();
    } catch (err) {
      say("Not enrolled: " + err.message + " Press Record to try again.");
      recordButton.disabled = false;
    }
  });
})();
