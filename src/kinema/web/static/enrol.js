// Webcam enrolment: consent fields, a challenge from POST /v1/videos/characters/challenges, the camera
// (getUserMedia), a recording (MediaRecorder) guided step by step, and the upload of the recording as it
// came from the camera (unmirrored: only the on-screen preview is mirrored) to POST /v1/videos/characters.
"use strict";

(function () {
  const form = document.getElementById("enrol-form");
  if (!form) return;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const startButton = document.getElementById("enrol-start");
  const recordButton = document.getElementById("enrol-record");
  const camera = document.getElementById("enrol-camera");
  const preview = document.getElementById("enrol-preview");
  const steps = document.getElementById("enrol-steps");
  const status = document.getElementById("enrol-status");
  const SECONDS_PER_STEP = 1.5;
  let challenge = null;
  let stream = null;

  function say(text) {
    status.textContent = text;
  }

  async function api(path, body) {
    const response = await fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRF-Token": csrf, Accept: "application/json" },
      body: body,
    });
    const data = await response.json().catch(() => null);
    if (!response.ok) {
      const message = data && data.error ? data.error.message : "The server answered " + response.status + ".";
      throw new Error(message);
    }
    return data;
  }

  function showSteps(moves) {
    const items = ["Look straight at the camera"];
    for (const move of moves) {
      items.push("Turn your head to your " + move + ", then hold");
      items.push("Back to the camera");
    }
    steps.replaceChildren(
      ...items.map((text) => {
        const li = document.createElement("li");
        li.textContent = text;
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

  startButton.addEventListener("click", async () => {
    if (!form.reportValidity()) return;
    startButton.disabled = true;
    try {
      challenge = await api("/v1/videos/characters/challenges", null);
      showSteps(challenge.moves);
      say(challenge.instruction + " Press Record when you are ready.");
      stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
      preview.srcObject = stream;
      await preview.play();
      camera.hidden = false;
      recordButton.disabled = false;
      recordButton.focus();
    } catch (err) {
      say("Could not start: " + err.message);
      startButton.disabled = false;
    }
  });

  function record() {
    return new Promise((resolve, reject) => {
      // MP4 first, where the browser records it (H.264 with its real rate). MediaRecorder's WebM carries no
      // frame rate (a 1 ms time base): the server takes the rate from the frames' timestamps instead.
      const type = ["video/mp4;codecs=avc1", "video/mp4", "video/webm;codecs=vp8", "video/webm"].find((t) =>
        MediaRecorder.isTypeSupported(t)
      );
      const recorder = new MediaRecorder(stream, type ? { mimeType: type } : undefined);
      const chunks = [];
      recorder.addEventListener("dataavailable", (e) => e.data.size && chunks.push(e.data));
      recorder.addEventListener("stop", () => resolve(new Blob(chunks, { type: recorder.mimeType })));
      recorder.addEventListener("error", (e) => reject(e.error || new Error("recording failed")));
      const count = steps.querySelectorAll("li").length;
      let step = 0;
      highlight(step);
      const timer = window.setInterval(() => {
        step += 1;
        if (step >= count) {
          window.clearInterval(timer);
          recorder.stop();
          return;
        }
        highlight(step);
      }, SECONDS_PER_STEP * 1000);
      recorder.start(250);
    });
  }

  recordButton.addEventListener("click", async () => {
    recordButton.disabled = true;
    say("Recording: follow the highlighted step.");
    try {
      const clip = await record();
      highlight(-1);
      say("Checking your clip…");
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
      say("Enrolled. Loading your likeness…");
      stream.getTracks().forEach((t) => t.stop());
      window.location.reload();
    } catch (err) {
      say("Not enrolled: " + err.message + " Press Record to try again.");
      recordButton.disabled = false;
    }
  });
})();
