// The console's only script: the signature pad, the camera's live quality check, and the
// category switch. Everything else works as plain HTML forms.
"use strict";

function setupSignaturePad() {
  const pad = document.getElementById("pad");
  if (!pad) return;
  const ctx = pad.getContext("2d");
  const out = document.getElementById("signature");
  let drawing = false;
  let drawn = false;
  ctx.lineWidth = 3;
  ctx.lineCap = "round";
  ctx.strokeStyle = "#000";
  function point(ev) {
    const r = pad.getBoundingClientRect();
    return [(ev.clientX - r.left) * (pad.width / r.width), (ev.clientY - r.top) * (pad.height / r.height)];
  }
  pad.addEventListener("pointerdown", (ev) => {
    drawing = true;
    pad.setPointerCapture(ev.pointerId);
    const [x, y] = point(ev);
    ctx.beginPath();
    ctx.moveTo(x, y);
  });
  pad.addEventListener("pointermove", (ev) => {
    if (!drawing) return;
    const [x, y] = point(ev);
    ctx.lineTo(x, y);
    ctx.stroke();
    drawn = true;
  });
  const stop = () => { drawing = false; };
  pad.addEventListener("pointerup", stop);
  pad.addEventListener("pointercancel", stop);
  document.getElementById("clear-pad").addEventListener("click", () => {
    ctx.clearRect(0, 0, pad.width, pad.height);
    drawn = false;
  });
  document.getElementById("sign-form").addEventListener("submit", () => {
    out.value = drawn ? pad.toDataURL("image/png") : "";
  });
}

function setupCameraCheck() {
  const preview = document.getElementById("preview");
  const quality = document.getElementById("quality");
  if (!preview || !quality) return;
  let busy = false;
  async function check() {
    if (busy || document.hidden) return;
    busy = true;
    try {
      const r = await fetch("/api/camera/check", { credentials: "same-origin" });
      const data = await r.json();
      if (data.preview) preview.src = data.preview;
      if (!data.available) {
        quality.textContent = data.reasons.join("；");
        quality.className = "bad";
      } else if (data.passed) {
        quality.textContent = "画面合格，可以拍照";
        quality.className = "good";
      } else {
        quality.textContent = "请调整：" + data.reasons.join("；");
        quality.className = "bad";
      }
    } catch (e) {
      quality.textContent = "摄像头检查暂不可用";
    } finally {
      busy = false;
    }
  }
  check();
  setInterval(check, 2000);
}

function setupCategorySwitch() {
  const select = document.getElementById("category");
  const form = document.getElementById("record-form");
  if (!select || !form) return;
  // A new category has its own form: save what was typed and reload with its fields.
  select.addEventListener("change", () => form.submit());
}

document.addEventListener("DOMContentLoaded", () => {
  setupSignaturePad();
  setupCameraCheck();
  setupCategorySwitch();
});
