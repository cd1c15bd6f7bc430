/* Veil console: live queue counts, deliberate reveals, keyboard shortcuts. Vanilla JS, no libraries, no inline
 * code anywhere (the Content-Security-Policy forbids it): everything the page needs comes from data-* attributes.
 *
 * Later features subscribe to websocket messages with:
 *   window.veilConsole.onEvent("break.due", function (message) { ... });
 */
(function () {
  "use strict";

  // Words go through Django's JavaScript catalogue (base.html loads it first); English if it is missing.
  var gettext = window.gettext || function (text) { return text; };
  var interpolate = window.interpolate || function (fmt, obj) {
    return fmt.replace(/%\((\w+)\)s/g, function (_m, key) { return String(obj[key]); });
  };
  var pageLang = document.documentElement.lang || undefined;
  var pageZone = document.documentElement.getAttribute("data-time-zone") || undefined;

  // ---- small helpers -------------------------------------------------------------------------------------------

  function csrfToken() {
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    if (match) {
      return decodeURIComponent(match[1]);
    }
    var input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function postJson(url, options) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      cache: "no-store",
      keepalive: Boolean(options && options.keepalive),
      headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" },
    });
  }

  var statusEl = null;
  var statusClearTimer = null;

  /** Say something in the page's polite live region. kind "ok" is shown calmly and clears itself. */
  function say(text, kind) {
    statusEl = statusEl || document.getElementById("live-status");
    if (!statusEl) {
      return;
    }
    window.clearTimeout(statusClearTimer);
    statusEl.classList.toggle("live-status--ok", kind === "ok");
    statusEl.textContent = text || "";
    if (text && kind === "ok") {
      statusClearTimer = window.setTimeout(function () {
        statusEl.textContent = "";
        statusEl.classList.remove("live-status--ok");
      }, 5000);
    }
  }

  // ---- event hub -------------------------------------------------------------------------------------------------

  var listeners = Object.create(null);

  function emit(type, message) {
    var list = (listeners[type] || []).concat(listeners["*"] || []);
    list.forEach(function (fn) {
      try {
        fn(message);
      } catch (err) {
        if (window.console) {
          window.console.error("veilConsole listener for " + type + " failed", err);
        }
      }
    });
  }

  var socket = null;
  var live = false;

  var veilConsole = {
    /** Call fn(message) for every websocket message of this type ("*" for all). Returns an unsubscribe function. */
    onEvent: function (type, fn) {
      (listeners[type] = listeners[type] || []).push(fn);
      return function () {
        listeners[type] = (listeners[type] || []).filter(function (f) {
          return f !== fn;
        });
      };
    },
    /** Send a JSON message if the socket is open; returns whether it was sent. */
    send: function (message) {
      if (socket && socket.readyState === WebSocket.OPEN) {
        socket.send(JSON.stringify(message));
        return true;
      }
      return false;
    },
    isLive: function () {
      return live;
    },
    say: say,
    csrfToken: csrfToken,
  };
  window.veilConsole = veilConsole;

  // The language switcher applies a choice at once; its button is only for a browser without JavaScript.
  document.documentElement.classList.add("js-language");
  document.addEventListener("change", function (event) {
    var select = event.target;
    if (select && select.classList && select.classList.contains("language-switch__select") && select.form) {
      select.form.submit();
    }
  });

  // ---- websocket: live queue counts ----------------------------------------------------------------------------

  function pausedText() {
    var text = gettext("Live updates paused \u2014 reconnecting\u2026");
    if (document.querySelector("[data-queue-count]")) {
      text += " " + gettext("The counts on this page may be out of date.");
    }
    return text;
  }
  var attempts = 0;
  var reconnectTimer = null;
  var heartbeatTimer = null;
  var pongTimer = null;
  var leaving = false;
  var wasPaused = false;
  var refused = false;

  function socketUrl() {
    return (location.protocol === "https:" ? "wss" : "ws") + "://" + location.host + "/ws/console/";
  }

  function scheduleReconnect() {
    if (leaving || refused) {
      return;
    }
    window.clearTimeout(reconnectTimer);
    // 1 s, 2 s, 4 s ... up to 30 s, with jitter so many consoles do not reconnect in step.
    var base = Math.min(30000, 1000 * Math.pow(2, attempts));
    attempts += 1;
    reconnectTimer = window.setTimeout(connect, base / 2 + Math.random() * (base / 2));
  }

  function stopHeartbeat() {
    window.clearInterval(heartbeatTimer);
    window.clearTimeout(pongTimer);
  }

  function startHeartbeat(ws) {
    stopHeartbeat();
    heartbeatTimer = window.setInterval(function () {
      if (ws.readyState !== WebSocket.OPEN) {
        return;
      }
      ws.send(JSON.stringify({ type: "ping" }));
      window.clearTimeout(pongTimer);
      pongTimer = window.setTimeout(function () {
        // No answer: the connection is dead even if the browser has not noticed yet.
        ws.close();
      }, 10000);
    }, 25000);
  }

  function connect() {
    if (leaving || refused) {
      return;
    }
    if (socket && (socket.readyState === WebSocket.OPEN || socket.readyState === WebSocket.CONNECTING)) {
      return;
    }
    var ws;
    try {
      ws = new WebSocket(socketUrl());
    } catch (err) {
      say(pausedText());
      wasPaused = true;
      scheduleReconnect();
      return;
    }
    socket = ws;
    ws.addEventListener("open", function () {
      attempts = 0;
      live = true;
      document.body.dataset.live = "open";
      startHeartbeat(ws);
      if (wasPaused) {
        wasPaused = false;
        say(gettext("Live updates are back."), "ok");
      }
      emit("socket.open", {});
    });
    ws.addEventListener("message", function (event) {
      window.clearTimeout(pongTimer);
      var message;
      try {
        message = JSON.parse(event.data);
      } catch (err) {
        return;
      }
      if (message && typeof message.type === "string") {
        emit(message.type, message);
      }
    });
    ws.addEventListener("close", function (event) {
      stopHeartbeat();
      var hadBeenLive = live;
      live = false;
      if (socket === ws) {
        socket = null;
      }
      if (leaving) {
        return;
      }
      document.body.dataset.live = "paused";
      if (event.code === 4403) {
        refused = true;
        say(gettext("Live updates are not available for this account. Reload the page to see current counts."));
        return;
      }
      wasPaused = true;
      say(pausedText());
      emit("socket.closed", { code: event.code, wasLive: hadBeenLive });
      scheduleReconnect();
    });
  }

  function reconnectSoon() {
    if (!live && !leaving && !refused) {
      attempts = 0;
      window.clearTimeout(reconnectTimer);
      connect();
    }
  }

  function applyCounts(message) {
    var counts = message.counts || {};
    document.querySelectorAll("[data-queue-count]").forEach(function (el) {
      var entry = counts[el.getAttribute("data-queue-count")];
      if (entry && typeof entry.waiting === "number") {
        el.textContent = String(entry.waiting);
      }
    });
    document.querySelectorAll("[data-queue-escalated]").forEach(function (el) {
      var entry = counts[el.getAttribute("data-queue-escalated")];
      if (entry && typeof entry.escalated === "number") {
        el.textContent = String(entry.escalated);
      }
    });
  }

  veilConsole.onEvent("queue.counts", applyCounts);

  // ---- reveal --------------------------------------------------------------------------------------------------

  var HOLD_MS = 350; // pressed longer than this = "hold to look": letting go softens the image

  function setupReveal() {
    var img = document.getElementById("item-image");
    var button = document.getElementById("reveal");
    if (!img || !button) {
      return null;
    }
    var frame = document.getElementById("viewer-frame");
    var previewUrl = img.getAttribute("data-preview-url");
    var revealApi = img.getAttribute("data-reveal-api");
    var endTemplate = img.getAttribute("data-reveal-end") || "";
    var blurClass = img.getAttribute("data-blur-class") || "blur-6";
    var grayOnReveal = img.getAttribute("data-grayscale") === "1";
    var baseAlt = img.getAttribute("alt") || "";
    var viewerNote = document.getElementById("viewer-note");
    var viewerLive = document.getElementById("viewer-live");
    // A card naming the category comes before the first reveal, for the categories the moderator asked about. The
    // server refuses the reveal (409 warning_first) unless it says the card was shown (?warned=1).
    var warnCategory = img.getAttribute("data-warn-category");
    var warning = document.getElementById("reveal-warning");
    var warned = false;

    function showWarning() {
      if (!warning) {
        return;
      }
      warning.hidden = false;
      var go = document.getElementById("reveal-warning-go");
      if (go) {
        go.focus();
      }
    }

    function hideWarning() {
      if (warning) {
        warning.hidden = true;
      }
    }

    if (warning) {
      document.getElementById("reveal-warning-go").addEventListener("click", function () {
        warned = true;
        hideWarning();
        reveal();
      });
      document.getElementById("reveal-warning-cancel").addEventListener("click", function () {
        hideWarning();
        button.focus();
      });
    }

    function note(text) {
      if (viewerNote) {
        viewerNote.textContent = text;
      } else if (text) {
        say(text);
      }
    }

    var state = "blurred"; // "blurred" | "loading" | "revealed"
    var generation = 0;
    var revealId = null;
    var windowTimer = null;
    var pressStart = 0;
    var pressing = false;
    var pendingUrl = null; // the clear URL being loaded, while state is "loading"

    function showWhen(current) {
      document.querySelectorAll("[data-when]").forEach(function (el) {
        el.hidden = el.getAttribute("data-when") !== current;
      });
    }

    function endUrl(id) {
      return endTemplate.replace(/\/0\/end\/$/, "/" + encodeURIComponent(id) + "/end/");
    }

    function endReveal(id, keepalive) {
      if (id === null || id === undefined) {
        return;
      }
      postJson(endUrl(id), { keepalive: keepalive }).catch(function () {
        /* the server ends the window by itself */
      });
    }

    function soften(options) {
      hideWarning();
      if (state === "blurred") {
        if (options && options.blank) {
          img.hidden = true;
        }
        return;
      }
      generation += 1;
      window.clearTimeout(windowTimer);
      state = "blurred";
      pendingUrl = null;
      // Blur first, then swap the source: the clear image is never shown unblurred after this line.
      img.classList.remove("revealed", "grayscale");
      img.classList.add(blurClass);
      img.dataset.state = "blurred";
      img.setAttribute("alt", baseAlt);
      if (options && options.blank) {
        img.removeAttribute("src"); // the item is no longer this person's: not even its preview is asked for
        img.hidden = true;
      } else {
        img.src = previewUrl;
      }
      if (frame) {
        frame.dataset.state = "blurred";
        frame.removeAttribute("aria-busy");
      }
      button.setAttribute("aria-pressed", "false");
      showWhen("blurred");
      var id = revealId;
      revealId = null;
      endReveal(id, Boolean(options && options.leaving));
    }

    img.addEventListener("load", function () {
      if (state !== "loading" || !pendingUrl || img.src !== pendingUrl) {
        return;
      }
      state = "revealed";
      img.classList.remove(blurClass);
      img.classList.add("revealed");
      img.classList.toggle("grayscale", grayOnReveal);
      img.dataset.state = "revealed";
      img.setAttribute("alt", img.getAttribute("data-alt-revealed") || baseAlt);
      if (frame) {
        frame.dataset.state = "revealed";
        frame.removeAttribute("aria-busy");
      }
      showWhen("revealed");
    });
    img.addEventListener("error", function () {
      if (state !== "loading" || !pendingUrl || img.src !== pendingUrl) {
        return;
      }
      soften();
      note(gettext("The clear image did not arrive in time. Press Reveal to try again."));
    });

    function reveal() {
      if (state !== "blurred") {
        return;
      }
      if (warnCategory && !warned) {
        showWarning();
        return;
      }
      state = "loading";
      generation += 1;
      var mine = generation;
      note("");
      button.setAttribute("aria-pressed", "true");
      if (frame) {
        frame.setAttribute("aria-busy", "true");
      }
      postJson(warned ? revealApi + "?warned=1" : revealApi)
        .then(function (response) {
          return response.json().then(
            function (body) {
              return { ok: response.ok, body: body };
            },
            function () {
              return { ok: response.ok, body: {} };
            }
          );
        })
        .then(function (result) {
          var data = result.body || {};
          if (!result.ok) {
            if (data.error === "warning_first") {
              warnCategory = warnCategory || gettext("this category");
              warned = false;
            }
            throw new Error(data.detail || gettext("The image could not be revealed."));
          }
          if (mine !== generation || state !== "loading") {
            // Softened (released, Esc, window left) before the server answered: close the window at once.
            endReveal(data.reveal, false);
            return;
          }
          revealId = data.reveal;
          var seconds = Math.max(1, Number(data.seconds) || 1);
          windowTimer = window.setTimeout(function () {
            soften();
          }, seconds * 1000);
          pendingUrl = new URL(data.url, location.href).href;
          img.src = data.url;
        })
        .catch(function (err) {
          if (mine === generation) {
            soften();
          }
          note(err && err.message ? err.message : gettext("The image could not be revealed."));
        });
    }

    function toggle() {
      if (state === "blurred") {
        reveal();
      } else {
        soften();
      }
    }

    function pressDown() {
      if (state === "blurred") {
        reveal();
        pressing = true;
        pressStart = Date.now();
      } else {
        pressing = false;
        soften();
      }
    }

    function pressUp() {
      if (pressing) {
        pressing = false;
        if (Date.now() - pressStart >= HOLD_MS) {
          soften(); // it was a hold: looking stops when the hand lets go
        }
      }
    }

    button.addEventListener("pointerdown", function (event) {
      if (event.button !== 0) {
        return;
      }
      pressDown();
    });
    document.addEventListener("pointerup", pressUp);
    document.addEventListener("pointercancel", pressUp);
    button.addEventListener("click", function (event) {
      // Pointer presses are handled above; this is Enter or Space on the focused button.
      if (event.detail === 0) {
        toggle();
      }
    });
    button.addEventListener("contextmenu", function (event) {
      event.preventDefault();
    });

    window.addEventListener("blur", function () {
      pressing = false;
      soften();
    });
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState !== "visible") {
        soften({ leaving: true });
      }
    });
    window.addEventListener("pagehide", function () {
      soften({ leaving: true });
    });

    return {
      pressDown: pressDown,
      pressUp: pressUp,
      soften: soften,
      toggleColour: function () {
        if (state === "revealed") {
          img.classList.toggle("grayscale");
          if (viewerLive) {
            viewerLive.textContent = img.classList.contains("grayscale") ? gettext("Grayscale.") : gettext("Colour, for this reveal.");
          }
        }
      },
    };
  }

  // ---- decision form and keyboard ----------------------------------------------------------------------------

  function setupDecisions(revealer) {
    var form = document.getElementById("decision-form");
    if (!form) {
      return;
    }
    var release = document.getElementById("release-form");
    var reason = document.getElementById("reason");
    var note = document.getElementById("form-note");
    var help = document.getElementById("help-panel");
    var helpToggle = document.getElementById("help-toggle");
    var submitting = false;

    function chosenPolicy() {
      var checked = form.querySelector("input[name=policy]:checked");
      return checked ? checked.value : "";
    }

    form.addEventListener("submit", function (event) {
      if (submitting) {
        event.preventDefault();
        return;
      }
      var action = event.submitter ? event.submitter.value : "";
      if (action === "remove" && !chosenPolicy()) {
        event.preventDefault();
        note.textContent = gettext("Choose the policy this item breaks (keys 1\u20139), then remove it.");
        var first = form.querySelector("input[name=policy][data-key]");
        if (first) {
          first.focus();
        }
        return;
      }
      if (action && action !== "approve" && !reason.value.trim()) {
        event.preventDefault();
        note.textContent = gettext("Write a short reason first, so the next person knows why.");
        reason.focus();
        return;
      }
      note.textContent = "";
      submitting = true;
      if (revealer) {
        revealer.soften();
      }
    });

    if (release) {
      release.addEventListener("submit", function () {
        if (revealer) {
          revealer.soften();
        }
      });
    }

    function setHelp(open) {
      if (!help) {
        return;
      }
      help.hidden = !open;
      if (helpToggle) {
        helpToggle.setAttribute("aria-expanded", open ? "true" : "false");
      }
    }

    if (helpToggle) {
      helpToggle.addEventListener("click", function () {
        setHelp(help.hidden);
      });
    }

    function submitWith(action) {
      var button = form.querySelector("button[name=action][value='" + action + "']");
      if (!button) {
        return;
      }
      if (typeof form.requestSubmit === "function") {
        form.requestSubmit(button);
      } else {
        button.click();
      }
    }

    var ACTION_KEYS = { a: "approve", x: "remove", e: "escalate", o: "second_opinion" };

    function isTyping(target) {
      if (!target || !(target instanceof Element)) {
        return false;
      }
      if (target.isContentEditable) {
        return true;
      }
      var tag = target.tagName;
      if (tag === "TEXTAREA" || tag === "SELECT") {
        return true;
      }
      if (tag === "INPUT") {
        var type = (target.getAttribute("type") || "text").toLowerCase();
        return ["checkbox", "radio", "button", "submit", "reset", "range", "color", "file"].indexOf(type) === -1;
      }
      return false;
    }

    document.addEventListener("keydown", function (event) {
      if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey || event.isComposing) {
        return;
      }
      if (isTyping(event.target)) {
        if (event.key === "Escape") {
          event.target.blur();
          if (revealer) {
            revealer.soften();
          }
        }
        return;
      }
      var key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
      if (key === "r") {
        event.preventDefault();
        if (!event.repeat && revealer) {
          revealer.pressDown();
        }
      } else if (key === "Escape") {
        setHelp(false);
        if (revealer) {
          revealer.soften();
        }
      } else if (key === "g") {
        if (revealer) {
          revealer.toggleColour();
        }
      } else if (ACTION_KEYS[key] && !event.repeat) {
        event.preventDefault();
        submitWith(ACTION_KEYS[key]);
      } else if (key === "s" && release && !event.repeat) {
        event.preventDefault();
        if (revealer) {
          revealer.soften();
        }
        release.submit();
      } else if (/^[1-9]$/.test(key)) {
        var radio = form.querySelector("input[name=policy][data-key='" + key + "']");
        if (radio) {
          event.preventDefault();
          radio.checked = true;
          note.textContent = "";
        }
      } else if (key === "/") {
        event.preventDefault();
        reason.focus();
      } else if (key === "?") {
        event.preventDefault();
        setHelp(help ? help.hidden : false);
      }
    });

    document.addEventListener("keyup", function (event) {
      if (revealer && (event.key === "r" || event.key === "R")) {
        revealer.pressUp();
      }
    });
  }

  // ---- the lease: renewed while the moderator is at it, a calm word before it would end -------------------------

  /** A local clock time in the reader's own zone, with the zone's name ("16:52 CET"). */
  function localClock(ms) {
    return new Date(ms).toLocaleTimeString(pageLang, {
      hour: "2-digit", minute: "2-digit", timeZoneName: "short", timeZone: pageZone,
    });
  }

  /** <time data-local-time datetime="ISO">: the moment written out in the reader's own zone, date and zone named. */
  function localTimes() {
    document.querySelectorAll("time[data-local-time]").forEach(function (el) {
      var ms = Date.parse(el.getAttribute("datetime"));
      if (isNaN(ms)) {
        return;
      }
      if (el.getAttribute("data-local-time") === "time") {
        el.textContent = localClock(ms); // today's time, in the reader's zone ("16:52 CET")
        return;
      }
      el.textContent = new Date(ms).toLocaleString(pageLang, {
        weekday: "short", day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit",
        timeZoneName: "short", timeZone: pageZone,
      });
    });
  }

  /** The queue list: N (or 1) takes the next item from the first queue, 2-9 from that queue; N goes back to an item
   * in hand. Only the buttons the page shows are pressed, so nothing happens that a click could not do. */
  function setupQueueKeys() {
    if (!document.body.classList.contains("page-queues")) {
      return;
    }
    document.addEventListener("keydown", function (event) {
      if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey || event.repeat) {
        return;
      }
      var target = event.target;
      if (target instanceof Element && target.closest("input, textarea, select, [contenteditable]")) {
        return;
      }
      var key = event.key.toLowerCase();
      var held = document.querySelector(".banner a.button--primary");
      if (key === "n" && held) {
        event.preventDefault();
        window.location.assign(held.href);
        return;
      }
      var number = key === "n" ? "1" : key;
      if (!/^[1-9]$/.test(number)) {
        return;
      }
      var button = document.querySelector("button[data-next-key='" + number + "']");
      if (button && button.form) {
        event.preventDefault();
        if (typeof button.form.requestSubmit === "function") {
          button.form.requestSubmit(button);
        } else {
          button.click();
        }
      }
    });
  }

  /** On a phone the purpose block folds to its summary (which names the requester), so the image comes first. */
  function foldPurposeOnPhones() {
    var block = document.getElementById("item-purpose");
    if (block && window.matchMedia && window.matchMedia("(max-width: 40rem)").matches) {
      block.open = false;
    }
  }

  function setupLease() {
    var note = document.getElementById("lease-note");
    if (!note) {
      return;
    }
    var api = note.getAttribute("data-lease-api");
    var leaseMs = Math.max(1, Number(note.getAttribute("data-lease-seconds")) || 600) * 1000;
    var expiresAt = Date.parse(note.getAttribute("data-expires-at")) || Date.now() + leaseMs;
    var text = document.getElementById("lease-note-text");
    var keep = document.getElementById("lease-keep");
    // Renew at most this often while active; warn this long before the end when nothing has happened since.
    var renewEvery = Math.min(60000, leaseMs / 3);
    var warnAhead = Math.min(60000, leaseMs / 4);
    var lastActivity = Date.now();
    var lastRenewal = Date.now();
    var renewing = false;
    var gone = false;
    var timer = null;

    function showGone(detail) {
      gone = true;
      window.clearTimeout(timer);
      note.dataset.state = "gone";
      text.textContent = (detail || gettext("This item went back to the queue while you were away.")) + " " +
        gettext("What you wrote is still in the form below, so nothing is lost: copy it if you need it.");
      keep.hidden = true;
      note.hidden = false;
    }

    function schedule() {
      window.clearTimeout(timer);
      timer = window.setTimeout(check, Math.max(0, expiresAt - warnAhead - Date.now()));
    }

    function renew() {
      if (renewing || gone) {
        return;
      }
      renewing = true;
      postJson(api)
        .then(function (response) {
          return response.json().then(function (body) {
            return { ok: response.ok, status: response.status, body: body || {} };
          });
        })
        .then(function (result) {
          renewing = false;
          if (result.ok) {
            expiresAt = Date.parse(result.body.expires_at) || Date.now() + leaseMs;
            lastRenewal = Date.now();
            note.hidden = true;
            note.dataset.state = "kept";
            schedule();
          } else if (result.status === 409) {
            showGone(result.body.detail);
          }
        })
        .catch(function () {
          renewing = false; // offline for a moment: the next activity or check tries again
        });
    }

    function check() {
      if (gone) {
        return;
      }
      if (Date.now() >= expiresAt) {
        showGone();
        return;
      }
      if (lastActivity > lastRenewal) {
        renew(); // active since the last renewal: keep it quietly
        return;
      }
      text.textContent = interpolate(
        // eslint-disable-next-line max-len
        gettext("Still with this item? Take your time. It goes back to the queue at %(time)s unless you carry on; anything you have written stays here."),
        { time: localClock(expiresAt) }, true);
      keep.hidden = false;
      note.hidden = false;
      note.dataset.state = "warning";
      timer = window.setTimeout(check, Math.max(0, expiresAt - Date.now()));
    }

    function activity() {
      lastActivity = Date.now();
      if (gone) {
        return;
      }
      if (!note.hidden || Date.now() - lastRenewal >= renewEvery) {
        renew();
      }
    }

    ["keydown", "pointerdown", "input", "wheel", "touchstart"].forEach(function (type) {
      document.addEventListener(type, activity, { passive: true, capture: true });
    });
    keep.addEventListener("click", renew);
    schedule();
  }

  // ---- start -----------------------------------------------------------------------------------------------------

  function start() {
    var revealer = setupReveal();
    setupDecisions(revealer);
    setupLease();
    localTimes();
    foldPurposeOnPhones();
    setupQueueKeys();
    if (revealer) {
      // A break stops all viewing: soften at once (the server refuses clear images from now on, and
      // static/veil/wellbeing.js opens the break screen).
      veilConsole.onEvent("break.started", function () {
        revealer.soften({ blank: true });
      });
      veilConsole.onEvent("break.state", function (message) {
        if (message.phase === "on_break") {
          revealer.soften({ blank: true });
        }
      });
    }
    if (document.body.getAttribute("data-live")) {
      window.addEventListener("pagehide", function () {
        leaving = true;
        window.clearTimeout(reconnectTimer);
      });
      window.addEventListener("pageshow", function (event) {
        if (event.persisted) {
          leaving = false;
          reconnectSoon();
        }
      });
      window.addEventListener("online", reconnectSoon);
      document.addEventListener("visibilitychange", function () {
        if (document.visibilityState === "visible") {
          reconnectSoon();
        }
      });
      connect();
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
