// gevent-chat in the browser: the line protocol over a WebSocket at ./ws.
//
// One text frame is one line, without its newline, in both directions.  Every
// received line is put on the page as text (textContent, never HTML), so
// nothing a user says can become markup or script.  The rules below port the
// terminal client's: render.py's line kinds and nick colours (CRC-32 of the
// case-folded nick over the same palette), and reconnect.py's backoff
// (0.5 s doubling, capped at 30 s, equal jitter) and alternate nicks.
"use strict";

(() => {
  // -- ported from gevent_chat/client/render.py and reconnect.py -------------------

  const PALETTE = [31, 32, 33, 34, 35, 36, 91, 92, 93, 94, 95, 96];
  const BASE_DELAY = 0.5;
  const MAX_DELAY = 30.0;
  const MAX_NICK_CHARS = 32;

  const CRC_TABLE = (() => {
    const table = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      table[n] = c >>> 0;
    }
    return table;
  })();

  function crc32(bytes) {
    let c = 0xffffffff;
    for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  }

  // Python's str.casefold, which JavaScript lacks: lower, upper, lower folds
  // the expansions (ẞ -> ss, ﬁ -> fi); casefold keeps no final sigma, folds
  // Cherokee to its capitals and leaves the dotless ı alone.  Checked against
  // Python for every code point Chromium knows.
  function fold(run) {
    return run
      .toLowerCase()
      .toUpperCase()
      .toLowerCase()
      .replace(/ς/g, "σ")
      .replace(/[\u13f8-\u13fd\uab70-\uabbf]/g, (c) => c.toUpperCase());
  }

  function casefold(text) {
    return text.replace(/[^\u0131]+/gu, fold);
  }

  const encoder = new TextEncoder();

  // The SGR colour code of a nick: render.nick_colour.
  function nickColour(nick) {
    return PALETTE[crc32(encoder.encode(casefold(nick))) % PALETTE.length];
  }

  const NICK = String.raw`[\p{L}\p{N}_][\p{L}\p{N}_.\-]*`;
  const HISTORY = /^\[\d\d:\d\d\] /;
  const PATTERNS = [
    ["notice", new RegExp(String.raw`^\*\*\* (?<text>.*)$`, "su")],
    ["private_out", new RegExp(String.raw`^-> \*(?<nick>${NICK})\* (?<text>.*)$`, "su")],
    ["private", new RegExp(String.raw`^\*(?<nick>${NICK})\* (?<text>.*)$`, "su")],
    ["action", new RegExp(String.raw`^\* (?<nick>${NICK}) (?<text>.*)$`, "su")],
    ["chat", new RegExp(String.raw`^(?<nick>${NICK}): (?<text>.*)$`, "su")],
  ];

  // render.classify: {kind, nick, text, stamp}.
  function classify(line) {
    let stamp = "";
    const h = HISTORY.exec(line);
    if (h) {
      stamp = h[0].slice(1, 6);
      line = line.slice(h[0].length);
    }
    for (const [kind, pattern] of PATTERNS) {
      const m = pattern.exec(line);
      if (m) return { kind, nick: m.groups.nick || "", text: m.groups.text, stamp };
    }
    return { kind: "plain", nick: "", text: line, stamp };
  }

  // Control and escape characters never reach the page, even from a server that keeps them.
  function sanitise(text) {
    return text.replace(/\t/g, " ").replace(/[\u0000-\u001f\u007f-\u009f]/g, "");
  }

  function backoffDelay(attempt, rand) {
    const nominal = Math.min(MAX_DELAY, BASE_DELAY * 2 ** Math.min(attempt, 32));
    return nominal / 2 + (rand * nominal) / 2;
  }

  function alternateNick(nick, attempt) {
    if (attempt === 0) return nick;
    const suffix = attempt < 3 ? "_".repeat(attempt) : `_${attempt}`;
    return [...nick].slice(0, MAX_NICK_CHARS - suffix.length).join("") + suffix;
  }

  const isPasswordPrompt = (t) => /^password: ?$/i.test(t);
  const isNickPrompt = (t) => /nickname: ?$/i.test(t) && !t.startsWith("*");
  const welcomeNick = (t) => /^\*\*\* Welcome, (.+?)!/.exec(t)?.[1] ?? null;
  const refusalReason = (t) => (t.startsWith("*** ") && /taken|invalid/i.test(t) ? t.slice(4) : null);

  // -- the page --------------------------------------------------------------------

  const $ = (id) => document.getElementById(id);
  const ui = {
    body: document.body,
    room: $("room"),
    me: $("me"),
    status: $("status"),
    login: $("login"),
    nick: $("nick"),
    passwordRow: $("password-row"),
    password: $("password"),
    loginError: $("login-error"),
    chat: $("chat"),
    log: $("log"),
    users: $("users"),
    usersTitle: $("users-title"),
    userList: $("user-list"),
    usersToggle: $("users-toggle"),
    composer: $("composer"),
    input: $("input"),
  };

  const MAX_LOG_LINES = 2000;
  const MAX_HISTORY = 200;

  const state = {
    ws: null,
    wanted: null, // the nick asked for; renames follow it
    nick: null, // the nick the server confirmed
    password: null,
    passwordSent: false,
    prompted: false, // the nickname prompt is waiting for an answer
    nickTry: 0,
    registered: false,
    everRegistered: false, // then a drop reconnects by itself
    room: "lobby",
    users: new Map(), // casefold(nick) -> nick
    who: null, // a /who reply being collected: {room, count, names}
    quitting: false,
    stopped: false, // wrong password: do not retry
    retries: 0,
    retryTimer: null,
    pings: new Map(), // token -> sent time
    pingSeq: 0,
    history: [],
    historyAt: 0,
    draft: "",
  };

  function setState(name, text) {
    ui.body.dataset.state = name;
    ui.status.textContent = text;
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function nickSpan(nick) {
    return el("span", `nick c${nickColour(nick)}`, nick);
  }

  function hhmm(date) {
    return `${String(date.getHours()).padStart(2, "0")}:${String(date.getMinutes()).padStart(2, "0")}`;
  }

  // Append one line to the log, as text only.
  function show(raw, extraClass) {
    const line = classify(sanitise(raw));
    const item = el("li", `line kind-${line.kind}${extraClass ? ` ${extraClass}` : ""}`);
    const stamp = el("span", line.stamp ? "stamp history" : "stamp", line.stamp || hhmm(new Date()));
    if (line.stamp) stamp.title = "said before you came";
    item.append(stamp);
    const text = el("span", "text", line.text);
    switch (line.kind) {
      case "notice":
        item.append(el("span", "marker", "*** "), text);
        break;
      case "chat":
        item.append(nickSpan(line.nick), el("span", "sep", ": "), text);
        break;
      case "action":
        item.append(el("span", "marker", "* "), nickSpan(line.nick), el("span", "sep", " "), text);
        break;
      case "private":
        item.append(el("span", "marker", "*"), nickSpan(line.nick), el("span", "marker", "* "), text);
        item.title = `private message from ${line.nick}`;
        break;
      case "private_out":
        item.append(el("span", "marker", "-> *"), nickSpan(line.nick), el("span", "marker", "* "), text);
        item.title = `private message to ${line.nick}`;
        break;
      default:
        item.append(text);
    }
    const log = ui.log;
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    log.append(item);
    while (log.childElementCount > MAX_LOG_LINES) log.firstElementChild.remove();
    if (atBottom) log.scrollTop = log.scrollHeight;
    return line;
  }

  function note(text) {
    show(`*** ${text}`, "local");
  }

  // -- who is here -----------------------------------------------------------------

  function renderUsers() {
    const bare = (n) => casefold(n.replace(/^[@+]/u, ""));
    const names = [...state.users.values()].sort((a, b) => (bare(a) < bare(b) ? -1 : 1));
    ui.userList.replaceChildren(
      ...names.map((n) => {
        const item = el("li");
        item.append(nickSpan(n));
        if (state.nick && bare(n) === casefold(state.nick)) item.append(el("span", "you", " (you)"));
        return item;
      }),
    );
    ui.usersTitle.textContent = `In #${state.room} (${names.length})`;
    ui.usersToggle.textContent = `${names.length} user${names.length === 1 ? "" : "s"}`;
  }

  function setRoom(room) {
    state.room = room;
    ui.room.textContent = `#${room}`;
    document.title = `#${room} - gevent-chat`;
  }

  function addUser(nick) {
    state.users.set(casefold(nick), nick);
  }

  function removeUser(nick) {
    state.users.delete(casefold(nick));
  }

  // Follow the room and its members from the server's notices.
  function track(text) {
    let m;
    if ((m = /^\*\*\* (\d+) users? in #(\S+): (.*)$/su.exec(text))) {
      const count = Number(m[1]);
      const names = m[3] ? m[3].split(", ") : [];
      let who = state.who;
      if (!who || who.room !== m[2] || who.count !== count || who.names.length >= count) {
        who = state.who = { room: m[2], count, names: [] };
      }
      who.names.push(...names);
      if (who.names.length >= count) {
        setRoom(who.room);
        // "@alice" is an operator of the room, "+bob" has a voice: the mark is shown, not keyed.
        state.users = new Map(who.names.map((n) => [casefold(n.replace(/^[@+]/u, "")), n]));
        state.who = null;
      }
    } else if ((m = /^\*\*\* you joined #(\S+)$/u.exec(text))) {
      setRoom(m[1]);
      state.users = new Map();
      if (state.nick) addUser(state.nick);
      send("/who");
    } else if ((m = /^\*\*\* you are now known as (\S+)$/u.exec(text))) {
      if (state.nick) removeUser(state.nick);
      state.nick = state.wanted = m[1];
      addUser(m[1]);
      ui.me.textContent = m[1];
    } else if ((m = /^\*\*\* (\S+) is now known as (\S+)$/u.exec(text))) {
      removeUser(m[1]);
      addUser(m[2]);
    } else if ((m = /^\*\*\* (\S+) joined(?: #\S+)?$/u.exec(text))) {
      addUser(m[1]);
    } else if ((m = /^\*\*\* (\S+) left(?: #\S+| \(.*\))?$/su.exec(text))) {
      removeUser(m[1]);
    } else if ((m = /^\*\*\* (\S+) was kicked by /u.exec(text))) {
      removeUser(m[1]);
    } else if (/^\*\*\* \S+ (made \S+ an operator|removed \S+ as an operator|gave \S+ a voice|took \S+'s voice)$/u.test(text)) {
      send("/who"); // the marks changed: ask again
      return;
    } else {
      return;
    }
    renderUsers();
  }

  // -- the connection --------------------------------------------------------------

  function send(line) {
    if (state.ws && state.ws.readyState === WebSocket.OPEN) {
      state.ws.send(line.replace(/[\r\n]+/g, " "));
      return true;
    }
    return false;
  }

  function connect() {
    clearTimeout(state.retryTimer);
    state.retryTimer = null;
    const url = new URL("ws", location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.hash = "";
    url.search = "";
    setState("connecting", "connecting…");
    let ws;
    try {
      ws = new WebSocket(url); // no subprotocol: text.ircv3.net would make /ws speak IRC
    } catch (err) {
      onClose(null, { code: 1006 });
      return;
    }
    state.ws = ws;
    state.registered = false;
    state.prompted = false;
    state.passwordSent = false;
    ws.addEventListener("message", (ev) => {
      if (typeof ev.data === "string") onLine(ev.data);
    });
    ws.addEventListener("close", (ev) => onClose(ws, ev));
  }

  function nickToClaim() {
    return state.wanted === null ? null : alternateNick(state.wanted, state.nickTry);
  }

  function answerPrompt() {
    const nick = nickToClaim();
    if (state.prompted && nick !== null && send(nick)) state.prompted = false;
  }

  function onLine(raw) {
    const text = sanitise(raw);
    if (!state.registered) {
      onRegistrationLine(text);
      return;
    }
    if (isNickPrompt(text) || isPasswordPrompt(text)) return;
    let shown = text;
    const pong = /^\*\*\* pong (\S+)$/.exec(text);
    if (pong && state.pings.has(pong[1])) {
      shown = `${text} (lag ${(performance.now() - state.pings.get(pong[1])).toFixed(1)} ms)`;
      state.pings.delete(pong[1]);
    }
    show(shown);
    track(text);
  }

  function onRegistrationLine(text) {
    if (isPasswordPrompt(text)) {
      if (state.password !== null && !state.passwordSent) {
        state.passwordSent = send(state.password);
      } else {
        state.stopped = true; // nothing to retry with until someone types it
        showLogin("This server needs a password.");
        ui.passwordRow.hidden = false;
        ui.password.focus();
      }
      return;
    }
    if (isNickPrompt(text)) {
      state.prompted = true;
      answerPrompt();
      return;
    }
    if (text.trim() === "*** wrong password") {
      state.password = null;
      state.stopped = true;
      ui.password.value = "";
      showLogin("Wrong password.");
      ui.passwordRow.hidden = false;
      return;
    }
    const nick = welcomeNick(text);
    if (nick !== null) {
      onWelcome(nick, text);
      return;
    }
    const reason = refusalReason(text);
    if (reason !== null) {
      if (state.everRegistered && /taken/i.test(reason)) {
        state.nickTry += 1; // held, perhaps by our own old connection: try nick_
        answerPrompt();
      } else {
        state.wanted = null;
        showLogin(reason);
        ui.nick.select();
      }
      return;
    }
    if (text.startsWith("*** ")) {
      if (state.everRegistered) show(text);
      else ui.loginError.textContent = text.slice(4);
    }
  }

  function onWelcome(nick, text) {
    const again = state.everRegistered;
    state.registered = state.everRegistered = true;
    state.nick = state.wanted = nick;
    state.retries = 0;
    state.nickTry = 0;
    state.quitting = false;
    try {
      localStorage.setItem("gevent-chat.nick", nick);
    } catch (err) {
      // private browsing: nothing to remember it in
    }
    ui.login.hidden = true;
    ui.chat.hidden = false;
    ui.composer.hidden = false;
    ui.usersToggle.hidden = false;
    ui.me.textContent = nick;
    setState("online", "online");
    show(text);
    if (again) {
      note(`registered again as ${nick}`);
      if (casefold(state.room) !== "lobby") {
        send(`/join ${state.room}`);
        return; // its "you joined" asks /who
      }
    }
    setRoom("lobby");
    state.users = new Map([[casefold(nick), nick]]);
    renderUsers();
    send("/who");
    ui.input.focus();
  }

  function onClose(ws, ev) {
    if (ws !== null && ws !== state.ws) return;
    state.ws = null;
    const wasRegistered = state.registered;
    state.registered = false;
    if (state.quitting || state.stopped || !state.everRegistered) {
      setState("offline", state.quitting ? "left" : "offline");
      if (!wasRegistered || state.quitting) {
        if (state.quitting) showLogin("You left the chat.");
        else showLogin(state.stopped ? ui.loginError.textContent : closeReason(ev));
      }
      return;
    }
    if (wasRegistered) note("connection lost");
    const delay = backoffDelay(state.retries, Math.random());
    state.retries += 1;
    setState("reconnecting", `reconnecting in ${delay.toFixed(1)} s`);
    state.retryTimer = setTimeout(connect, delay * 1000);
  }

  function closeReason(ev) {
    if (ui.loginError.textContent) return ui.loginError.textContent;
    return ev && ev.code === 1006 ? "Could not reach the server." : "The server closed the connection.";
  }

  function showLogin(message) {
    if (state.everRegistered && !state.quitting && !state.stopped) return;
    ui.login.hidden = false;
    ui.chat.hidden = true;
    ui.composer.hidden = true;
    ui.usersToggle.hidden = true;
    ui.loginError.textContent = message || "";
    if (state.quitting) {
      state.everRegistered = false;
      state.quitting = false;
    }
  }

  // -- input -----------------------------------------------------------------------

  ui.login.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const nick = ui.nick.value.trim();
    if (!nick) {
      ui.loginError.textContent = "Choose a nickname.";
      return;
    }
    state.wanted = nick;
    state.nickTry = 0;
    state.stopped = false;
    if (!ui.passwordRow.hidden) state.password = ui.password.value;
    ui.loginError.textContent = "";
    if (state.ws === null) {
      connect();
    } else if (!state.passwordSent && state.password !== null && ui.passwordRow.hidden === false) {
      state.passwordSent = send(state.password);
    } else {
      answerPrompt();
    }
  });

  function sendUserLine(line) {
    const words = line.trim().split(/\s+/);
    const command = line.startsWith("/") && !line.startsWith("//") ? words[0].toLowerCase() : null;
    if (command === "/ping") {
      if (words.length === 1) {
        state.pingSeq += 1;
        line = `/ping lag${state.pingSeq}`;
        words.push(`lag${state.pingSeq}`);
      }
      state.pings.set(words[1], performance.now());
    }
    if (!send(line)) {
      note("not connected: the line was not sent");
      return false;
    }
    if (command === null) {
      show(`${state.nick}: ${line.startsWith("//") ? line.slice(1) : line}`, "self");
    } else if (command === "/me") {
      show(`* ${state.nick} ${line.slice(3).trimStart()}`, "self");
    } else if (command !== "/msg") {
      // /msg comes back from the server as "-> *nick* text".
      show(line, "kind-command self");
    }
    if (command === "/quit") state.quitting = true;
    return true;
  }

  ui.composer.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const line = ui.input.value;
    if (!line.trim()) return;
    if (sendUserLine(line)) {
      if (state.history[state.history.length - 1] !== line) state.history.push(line);
      if (state.history.length > MAX_HISTORY) state.history.shift();
      ui.input.value = "";
    }
    state.historyAt = state.history.length;
  });

  ui.input.addEventListener("keydown", (ev) => {
    if (ev.key !== "ArrowUp" && ev.key !== "ArrowDown") return;
    const h = state.history;
    if (state.historyAt === h.length) state.draft = ui.input.value;
    const at = state.historyAt + (ev.key === "ArrowUp" ? -1 : 1);
    if (at < 0 || at > h.length) return;
    ev.preventDefault();
    state.historyAt = at;
    ui.input.value = at === h.length ? state.draft : h[at];
    ui.input.setSelectionRange(ui.input.value.length, ui.input.value.length);
  });

  ui.usersToggle.addEventListener("click", () => {
    const open = ui.users.classList.toggle("open");
    ui.usersToggle.setAttribute("aria-expanded", String(open));
  });

  try {
    ui.nick.value = localStorage.getItem("gevent-chat.nick") || "";
  } catch (err) {
    // no storage: start empty
  }

  // For tests and the curious: the ported rules.
  window.geventChat = Object.freeze({ nickColour, casefold, classify, backoffDelay, alternateNick, state });
})();
