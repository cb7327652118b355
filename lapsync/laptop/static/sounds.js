// Short feedback tones made in the browser (Web Audio oscillators: no sound files,
// nothing from the network) and the page's mute toggle, remembered in localStorage.
(function () {
  "use strict";
  var KEY = "lapsync.sound";  // "off" while muted
  // Each kind has its own waveform and pitch, so that it is told apart without looking.
  var TONES = {
    good: [{type: "sine", freq: 880, at: 0, ms: 130}],
    warn: [{type: "triangle", freq: 520, at: 0, ms: 140}, {type: "triangle", freq: 520, at: 200, ms: 140}],
    bad: [{type: "square", freq: 160, at: 0, ms: 480}]
  };
  var context = null;

  function muted() {
    try { return window.localStorage.getItem(KEY) === "off"; } catch (e) { return false; }
  }

  function setMuted(value) {
    try { window.localStorage.setItem(KEY, value ? "off" : "on"); } catch (e) { /* private mode: per page */ }
  }

  function audio() {
    var Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) return null;
    if (!context) context = new Context();
    if (context.state === "suspended" && context.resume) context.resume();
    return context;
  }

  function tone(ctx, spec) {
    var osc = ctx.createOscillator(), gain = ctx.createGain();
    var start = ctx.currentTime + spec.at / 1000, end = start + spec.ms / 1000;
    osc.type = spec.type;
    osc.frequency.value = spec.freq;
    gain.gain.setValueAtTime(0.3, start);
    gain.gain.exponentialRampToValueAtTime(0.001, end);
    osc.connect(gain);
    gain.connect(ctx.destination);
    osc.start(start);
    osc.stop(end + 0.02);
  }

  function play(kind) {
    if (muted() || !TONES[kind]) return;
    try {
      var ctx = audio();
      if (ctx) TONES[kind].forEach(function (spec) { tone(ctx, spec); });
    } catch (e) { /* no audio device: the flash still shows */ }
  }

  function wireToggle(button) {
    function render() {
      var off = muted();
      button.setAttribute("aria-pressed", off ? "false" : "true");  // pressed: sound on
      button.textContent = off ? button.dataset.offText : button.dataset.onText;
    }
    button.hidden = false;
    render();
    button.addEventListener("click", function () {
      setMuted(!muted());
      render();
      if (!muted()) play("good");  // let the helper hear the volume at once
    });
  }

  window.LapsyncSounds = {play: play, muted: muted, setMuted: setMuted};
  var toggle = document.getElementById("sound-toggle");
  if (toggle) wireToggle(toggle);
})();
