/* Veil console: animated pictures and video. Nothing moves until asked; it plays softened and grey; a keyframe or
 * the clear video is shown only after a logged reveal; sound is off until turned on; never autoplay. The seconds of
 * clear video played are reported to the server, which stops playback (409) during a break or at the exposure cap.
 *
 * Keys: Left/Right keyframe, R reveal it, P play/pause softened, V play clear, M sound, [ ] speed, , . one frame,
 * Esc soften. Vanilla JS, data-* attributes only (the Content-Security-Policy forbids inline code).
 */
window.gettext = window.gettext || function (s) { return s; };
(function () {
  "use strict";

  var root = document.getElementById("motion");
  if (!root) {
    return;
  }
  var still = document.getElementById("motion-still");
  var video = document.getElementById("motion-video");
  var keys = Array.prototype.slice.call(document.querySelectorAll(".motion__key"));
  var revealBtn = document.getElementById("motion-reveal");
  var playBtn = document.getElementById("motion-play");
  var clearBtn = document.getElementById("motion-clear");
  var muteBtn = document.getElementById("motion-mute");
  var speedOut = document.getElementById("motion-speed");
  var note = document.getElementById("viewer-note");
  var blurClass = root.getAttribute("data-blur-class") || "blur-6";
  var revealSeconds = parseInt(root.getAttribute("data-reveal-seconds"), 10) || 5;
  var grayOnReveal = root.getAttribute("data-grayscale") === "1";
  var sheetUrl = root.getAttribute("data-sheet-url");
  var clipUrl = root.getAttribute("data-clip-url");
  var keyframeTemplate = root.getAttribute("data-keyframe-url");
  var revealApi = root.getAttribute("data-reveal-api");
  var endTemplate = root.getAttribute("data-reveal-end") || "";
  var warnCategory = root.getAttribute("data-warn-category");
  var SPEEDS = [0.25, 0.5, 1, 1.5, 2];
  var FRAME = 1 / 25;

  var selected = 0;
  var keyReveal = null; // {id, timer}
  var clear = null; // {id, progress, played, since, timer}
  var muted = true;
  var speed = 2; // index into SPEEDS

  function csrf() {
    return window.veilConsole ? window.veilConsole.csrfToken() : "";
  }

  function post(url, body) {
    var headers = { "X-CSRFToken": csrf(), Accept: "application/json" };
    var init = { method: "POST", credentials: "same-origin", cache: "no-store", headers: headers };
    if (body) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(url, init);
  }

  function say(text) {
    if (note) {
      note.textContent = text || "";
    }
  }

  function endUrl(id) {
    return endTemplate.replace(/\/0\/end\/$/, "/" + encodeURIComponent(id) + "/end/");
  }

  function askReveal(query) {
    if (warnCategory && !window.confirm(gettext("This item was reported as") + " " + warnCategory + ". " +
        gettext("Reveal it only if you choose to."))) {
      return Promise.reject(new Error("declined"));
    }
    var url = revealApi + "?" + query + (warnCategory ? "&warned=1" : "");
    return post(url).then(function (response) {
      return response.json().then(function (body) {
        if (!response.ok) {
          throw new Error(body.detail || gettext("The reveal was refused."));
        }
        return body;
      });
    });
  }

  // ---- keyframes -------------------------------------------------------------------------------------------------

  function select(n) {
    if (!keys.length) {
      return;
    }
    selected = (n + keys.length) % keys.length;
    keys.forEach(function (k, i) {
      k.setAttribute("aria-pressed", i === selected ? "true" : "false");
    });
    keys[selected].focus({ preventScroll: false });
    if (keyReveal) {
      softenKeyframe();
    }
  }

  function softenKeyframe() {
    if (!keyReveal) {
      return;
    }
    window.clearTimeout(keyReveal.timer);
    post(endUrl(keyReveal.id)).catch(function () {});
    keyReveal = null;
    still.src = sheetUrl;
    still.className = "item-image motion__still " + blurClass;
    still.setAttribute("data-state", "blurred");
    still.setAttribute("alt", gettext("Softened contact sheet of the keyframes"));
  }

  function revealKeyframe() {
    stopClear();
    pause();
    showStill();
    var number = selected;
    askReveal("keyframe=" + number).then(function (body) {
      softenKeyframe();
      keyReveal = { id: body.reveal, timer: window.setTimeout(softenKeyframe, Math.min(body.seconds, revealSeconds) * 1000) };
      still.src = body.url;
      still.className = "item-image motion__still revealed" + (grayOnReveal ? " grayscale" : "");
      still.setAttribute("data-state", "revealed");
      still.setAttribute("alt", gettext("Keyframe") + " " + (number + 1) + gettext(", clear"));
      say(gettext("Keyframe shown briefly; it softens by itself. Esc softens it now."));
    }).catch(function (err) {
      if (err.message !== "declined") {
        say(err.message);
      }
    });
  }

  // ---- playback -------------------------------------------------------------------------------------------------

  function showStill() {
    video.hidden = true;
    still.hidden = false;
  }

  function showVideo() {
    still.hidden = true;
    video.hidden = false;
  }

  function pause() {
    if (!video.paused) {
      video.pause();
    }
    playBtn.setAttribute("aria-pressed", "false");
  }

  function useSoftSource() {
    if (video.getAttribute("data-state") !== "blurred" || !video.getAttribute("src")) {
      video.setAttribute("src", clipUrl);
      video.className = "item-image motion__video " + blurClass;
      video.setAttribute("data-state", "blurred");
      video.muted = true; // the preview clip has no sound anyway
    }
  }

  function togglePlay() {
    softenKeyframe();
    if (!clear) {
      useSoftSource();
    }
    showVideo();
    video.playbackRate = SPEEDS[speed];
    if (video.paused) {
      video.play().catch(function () {});
      playBtn.setAttribute("aria-pressed", "true");
    } else {
      pause();
    }
  }

  function report(final) {
    if (!clear) {
      return Promise.resolve();
    }
    var now = Date.now();
    if (clear.since !== null) {
      clear.played += (now - clear.since) / 1000;
      clear.since = video.paused ? null : now;
    }
    var current = clear;
    return post(current.progress, { seconds: current.played }).then(function (response) {
      if (response.status === 409 || response.status === 403 || response.status === 404) {
        return response.json().then(function (body) {
          if (!final) {
            stopClear();
            say(body.detail || gettext("Playback stopped."));
          }
        });
      }
      return null;
    }).catch(function () {});
  }

  function playClear() {
    softenKeyframe();
    if (clear) {
      togglePlay();
      return;
    }
    askReveal("playback=1").then(function (body) {
      clear = { id: body.reveal, progress: body.progress, played: 0, since: null, timer: null };
      video.setAttribute("src", body.url);
      video.className = "item-image motion__video revealed" + (grayOnReveal ? " grayscale" : "");
      video.setAttribute("data-state", "revealed");
      video.muted = muted;
      clearBtn.setAttribute("aria-pressed", "true");
      showVideo();
      video.playbackRate = SPEEDS[speed];
      clear.timer = window.setInterval(function () {
        report(false);
      }, 2000);
      video.play().catch(function () {});
      playBtn.setAttribute("aria-pressed", "true");
      say(gettext("Clear video: logged, and the seconds played count as revealed time. Esc softens it."));
    }).catch(function (err) {
      if (err.message !== "declined") {
        say(err.message);
      }
    });
  }

  /** Back to grey and soft: the clear stream is dropped (not just hidden), its reveal ended on the server. */
  function stopClear() {
    if (!clear) {
      return;
    }
    var ending = clear;
    report(true).then(function () {
      post(endUrl(ending.id)).catch(function () {});
    });
    window.clearInterval(ending.timer);
    clear = null;
    video.pause();
    video.removeAttribute("src");
    video.load();
    video.setAttribute("data-state", "blurred");
    video.className = "item-image motion__video " + blurClass;
    clearBtn.setAttribute("aria-pressed", "false");
    playBtn.setAttribute("aria-pressed", "false");
    showStill();
  }

  video.addEventListener("play", function () {
    if (clear && clear.since === null) {
      clear.since = Date.now();
    }
  });
  video.addEventListener("pause", function () {
    if (clear && clear.since !== null) {
      clear.played += (Date.now() - clear.since) / 1000;
      clear.since = null;
    }
  });
  video.addEventListener("ended", function () {
    playBtn.setAttribute("aria-pressed", "false");
  });

  function toggleMute() {
    if (muteBtn.disabled) {
      return;
    }
    muted = !muted;
    video.muted = muted || !clear; // only the clear stream has sound
    muteBtn.setAttribute("aria-pressed", muted ? "true" : "false");
    muteBtn.firstChild.textContent = muted ? gettext("Sound off") + " " : gettext("Sound on") + " ";
  }

  function changeSpeed(step) {
    speed = Math.max(0, Math.min(SPEEDS.length - 1, speed + step));
    video.playbackRate = SPEEDS[speed];
    speedOut.textContent = SPEEDS[speed] + "\u00d7";
  }

  function stepFrame(direction) {
    if (video.hidden) {
      if (!clear) {
        useSoftSource();
      }
      showVideo();
    }
    pause();
    video.currentTime = Math.max(0, (video.currentTime || 0) + direction * FRAME);
  }

  function softenAll() {
    softenKeyframe();
    stopClear();
    pause();
    showStill();
  }

  // ---- wiring ----------------------------------------------------------------------------------------------------

  keys.forEach(function (k) {
    k.addEventListener("click", function () {
      select(parseInt(k.getAttribute("data-keyframe"), 10));
    });
  });
  revealBtn.addEventListener("click", revealKeyframe);
  playBtn.addEventListener("click", togglePlay);
  clearBtn.addEventListener("click", function () {
    if (clear) {
      stopClear();
    } else {
      playClear();
    }
  });
  muteBtn.addEventListener("click", toggleMute);

  function typing(target) {
    return target && (target.tagName === "TEXTAREA" || target.tagName === "INPUT" || target.isContentEditable);
  }

  // Capture phase: before console.js, whose R (reveal a still) does nothing on this page.
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) {
      return;
    }
    var key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    var handled = true;
    if (key === "ArrowRight") {
      select(selected + 1);
    } else if (key === "ArrowLeft") {
      select(selected - 1);
    } else if (key === "r" && !event.repeat) {
      revealKeyframe();
    } else if (key === "p" && !event.repeat) {
      togglePlay();
    } else if (key === "v" && !event.repeat) {
      if (clear) {
        stopClear();
      } else {
        playClear();
      }
    } else if (key === "m" && !event.repeat) {
      toggleMute();
    } else if (key === "[") {
      changeSpeed(-1);
    } else if (key === "]") {
      changeSpeed(1);
    } else if (key === ",") {
      stepFrame(-1);
    } else if (key === ".") {
      stepFrame(1);
    } else if (key === "Escape") {
      softenAll();
      handled = false; // console.js closes its help panel too
    } else {
      handled = false;
    }
    if (handled) {
      event.preventDefault();
    }
  }, true);

  // Switching away softens, as for a still; leaving reports what was played.
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") {
      softenAll();
    }
  });
  window.addEventListener("pagehide", softenAll);

  // A break stops playback at once (the server refuses the stream and the progress from now on, and
  // static/veil/wellbeing.js opens the break screen).
  function breakStops() {
    softenAll();
    say(gettext("A break has started: playback stopped."));
  }
  if (window.veilConsole) {
    window.veilConsole.onEvent("break.started", breakStops);
    window.veilConsole.onEvent("break.state", function (message) {
      if (message.phase === "on_break") {
        breakStops();
      }
    });
  }
  window.veilMotion = { stop: softenAll, selected: function () { return selected; } };
})();
