// cryprint ward station: record a cry in the browser and hand it to the form as a WAV file.
// No server-side codec: the browser decodes what it recorded and this encodes 16-bit PCM WAV.
"use strict";

function encodeWav(samples, sampleRate) {
  const buffer = new ArrayBuffer(44 + samples.length * 2);
  const view = new DataView(buffer);
  const text = (offset, string) => { for (let i = 0; i < string.length; i++) view.setUint8(offset + i, string.charCodeAt(i)); };
  text(0, "RIFF"); view.setUint32(4, 36 + samples.length * 2, true); text(8, "WAVE");
  text(12, "fmt "); view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, sampleRate, true); view.setUint32(28, sampleRate * 2, true);
  view.setUint16(32, 2, true); view.setUint16(34, 16, true);
  text(36, "data"); view.setUint32(40, samples.length * 2, true);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    view.setInt16(44 + i * 2, s < 0 ? s * 0x8000 : s * 0x7fff, true);
  }
  return new Blob([view], { type: "audio/wav" });
}

function setup() {
  const record = document.getElementById("record");
  const stop = document.getElementById("stop");
  const input = document.getElementById("cry-file");
  const state = document.getElementById("recording-state");
  if (!record || !stop || !input) return;
  if (!navigator.mediaDevices || !window.MediaRecorder) {
    record.disabled = true;
    state.textContent = "recording needs a browser with microphone access (https or localhost)";
    return;
  }
  let recorder = null;
  let chunks = [];
  record.addEventListener("click", async () => {
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
      recorder = new MediaRecorder(stream);
      chunks = [];
      recorder.addEventListener("dataavailable", (event) => chunks.push(event.data));
      recorder.addEventListener("stop", async () => {
        stream.getTracks().forEach((track) => track.stop());
        const context = new AudioContext();
        const decoded = await context.decodeAudioData(await new Blob(chunks).arrayBuffer());
        const wav = encodeWav(decoded.getChannelData(0), decoded.sampleRate);
        const files = new DataTransfer();
        files.items.add(new File([wav], "recording.wav", { type: "audio/wav" }));
        input.files = files.files;
        state.textContent = `recorded ${decoded.duration.toFixed(1)} s: press Identify`;
      });
      recorder.start();
      record.disabled = true; stop.disabled = false;
      state.textContent = "recording…";
    } catch (error) {
      state.textContent = `no microphone: ${error.message}`;
    }
  });
  stop.addEventListener("click", () => {
    if (recorder) recorder.stop();
    record.disabled = false; stop.disabled = true;
  });
}

document.addEventListener("DOMContentLoaded", setup);
