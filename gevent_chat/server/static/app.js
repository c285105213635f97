// gevent-chat in the browser: a small IRC client over the WebSocket at ./ws.
//
// It asks for the IRCv3 subprotocol text.ircv3.net (one IRC message per text
// frame, no line ending).  model.js keeps the rooms, members and lines;
// this file owns the socket, the reconnect, and the page.  Everything
// received is put on the page as text (textContent, never HTML), so nothing
// a user says can become markup or script.
import { alternateNick, backoffDelay, casefold, nickColour } from "./rules.js";
import * as irc from "./irc.js";
import { Chat, MAX_LINES, SERVER } from "./model.js";

const SUBPROTOCOL = "text.ircv3.net";
const TITLE = "gevent-chat";
const MAX_HISTORY = 200;
const LOBBY = "#lobby";

const $ = (id) => document.getElementById(id);
const ui = {
  body: document.body,
  roomsToggle: $("rooms-toggle"),
  roomsUnread: $("rooms-unread"),
  room: $("room"),
  topic: $("topic"),
  me: $("me"),
  status: $("status"),
  usersToggle: $("users-toggle"),
  login: $("login"),
  nick: $("nick"),
  passwordRow: $("password-row"),
  password: $("password"),
  loginNote: $("login-note"),
  loginError: $("login-error"),
  chat: $("chat"),
  sidebar: $("sidebar"),
  roomList: $("room-list"),
  joinOpen: $("join-open"),
  notify: $("notify"),
  roomNote: $("room-note"),
  rejoin: $("rejoin"),
  topicEdit: $("topic-edit"),
  modesOpen: $("modes-open"),
  leave: $("leave"),
  logs: $("logs"),
  users: $("users"),
  usersTitle: $("users-title"),
  userList: $("user-list"),
  composer: $("composer"),
  input: $("input"),
  inputHint: $("input-hint"),
  announce: $("announce"),
  menu: $("menu"),
  joinDialog: $("join-dialog"),
  joinForm: $("join-form"),
  joinName: $("join-name"),
  publicNote: $("public-note"),
  publicList: $("public-list"),
  publicRefresh: $("public-refresh"),
  joinClose: $("join-close"),
};

// The server's --max-line-bytes (UTF-8 bytes of one line of text), written
// into the page by the server; null when the page was not served by it.
const MAX_LINE_BYTES = Number.parseInt(ui.body.dataset.maxLineBytes, 10) || null;

const state = {
  chat: new Chat(),
  ws: null,
  heard: false, // this connection has had a message from the server
  wanted: null, // the nick asked for
  password: null,
  nickTry: 0,
  everRegistered: false, // then a drop reconnects by itself
  quitting: false,
  stopped: false, // wrong password: do not retry
  retries: 0,
  retryTimer: null,
  logs: new Map(), // room key -> its <ol>, kept while the room is: the scrollback
  scroll: new Map(), // room key -> {top, bottom} when it was left
  history: [],
  historyAt: 0,
  draft: "",
  shown: null, // the room whose log is on the page
  usersDrawn: null, // what the member list shows now (drawn again only when it changes)
  menuFrom: null, // the button a menu was opened from: focus goes back to it
};

const now = () => Date.now();

function setState(name, text) {
  ui.body.dataset.state = name;
  if (ui.status.textContent !== text) ui.status.textContent = text;
}

const notJoined = () => setState("idle", "not joined");

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function nickSpan(nick) {
  return el("span", `nick c${nickColour(nick)}`, nick);
}

const two = (n) => String(n).padStart(2, "0");
const hhmm = (date) => `${two(date.getHours())}:${two(date.getMinutes())}`;
const ymd = (date) => `${date.getFullYear()}-${two(date.getMonth() + 1)}-${two(date.getDate())}`;
const sameDay = (a, b) => ymd(a) === ymd(b); // a line from another day shows its date too

// -- the log of each room ----------------------------------------------------------

function roomLabel(room) {
  if (room.kind === "server") return room.name;
  return room.kind === "query" ? `conversation with ${room.name}` : room.name;
}

function logFor(key) {
  let log = state.logs.get(key);
  if (!log) {
    const room = state.chat.room(key);
    log = el("ol", "log");
    log.setAttribute("role", "log");
    log.setAttribute("aria-live", "polite");
    log.setAttribute("aria-label", `messages in ${room ? roomLabel(room) : "the server window"}`);
    log.tabIndex = 0; // scrollable by keyboard
    log.dataset.room = key;
    log.hidden = key !== state.chat.active;
    ui.logs.append(log);
    state.logs.set(key, log);
  }
  return log;
}

function lineNode(entry) {
  const classes = ["line", `kind-${entry.kind}`];
  if (entry.self) classes.push("self");
  if (entry.mention) classes.push("mention");
  if (entry.history) classes.push("history");
  const item = el("li", classes.join(" "));
  const when = new Date(entry.time);
  const stamp = el("time", "stamp", sameDay(when, new Date()) ? hhmm(when) : `${ymd(when)} ${hhmm(when)}`);
  stamp.dateTime = when.toISOString();
  stamp.title = entry.history ? `said before you came, ${when.toLocaleString()}` : when.toLocaleString();
  item.append(stamp);
  const text = el("span", "text", entry.text);
  switch (entry.kind) {
    case "chat":
      item.append(nickSpan(entry.nick), el("span", "sep", ": "), text);
      break;
    case "action":
      item.append(el("span", "marker", "* "), nickSpan(entry.nick), el("span", "sep", " "), text);
      break;
    case "notice":
      if (entry.nick) item.append(el("span", "marker", "-"), nickSpan(entry.nick), el("span", "marker", "- "));
      else item.append(el("span", "marker", "*** "));
      item.append(text);
      break;
    case "command":
      item.append(text);
      break;
    default: // event, info, error
      item.append(el("span", "marker", "*** "), text);
  }
  return item;
}

const atBottom = (log) => log.scrollHeight - log.scrollTop - log.clientHeight < 40;

function showEntries(entries) {
  for (const entry of entries) {
    if (!state.chat.room(entry.room)) continue;
    const log = logFor(entry.room);
    const follow = log.hidden || atBottom(log);
    log.append(lineNode(entry));
    while (log.childElementCount > MAX_LINES) log.firstElementChild.remove();
    if (follow && !log.hidden) log.scrollTop = log.scrollHeight;
  }
}

function dropLogs() {
  for (const [key, log] of state.logs) {
    if (!state.chat.room(key)) {
      log.remove();
      state.logs.delete(key);
      state.scroll.delete(key);
    }
  }
}

// -- the room list, the header, the members ----------------------------------------

// Rebuild a list of buttons without losing the keyboard focus: the button
// that had it (found again by its data attribute) gets it back.
function keepFocus(list, key, rebuild) {
  const had = list.contains(document.activeElement) ? document.activeElement.dataset[key] : undefined;
  rebuild();
  if (had !== undefined) findButton(list, key, had)?.focus();
}

function findButton(list, key, value) {
  return [...list.querySelectorAll("button")].find((b) => b.dataset[key] === value) ?? null;
}

function renderRooms() {
  keepFocus(ui.roomList, "room", drawRooms);
  const total = state.chat.unreadTotal();
  ui.roomsUnread.textContent = total ? String(total) : "";
  ui.roomsUnread.hidden = total === 0;
  ui.roomsToggle.setAttribute("aria-label", total ? `Rooms, ${total} unread` : "Rooms");
}

function drawRooms() {
  const chat = state.chat;
  const items = chat.ordered().map((room) => {
    const item = el("li", `room-item kind-${room.kind}`);
    const button = el("button", "room-entry");
    button.type = "button";
    button.dataset.room = room.key;
    if (room.key === chat.active) button.setAttribute("aria-current", "true");
    if (room.kind === "channel" && !room.joined) button.classList.add("parted");
    button.append(el("span", "name", room.name));
    const said = [roomLabel(room)];
    if (room.kind === "channel" && !room.joined) said.push("not joined");
    if (room.unread) {
      button.append(el("span", room.mention ? "unread mention" : "unread", String(room.unread)));
      said.push(`${room.unread} unread`);
    }
    if (room.mention) said.push("mentions you");
    button.setAttribute("aria-label", said.join(", "));
    item.append(button);
    return item;
  });
  ui.roomList.replaceChildren(...items);
}

function renderHeader() {
  const chat = state.chat;
  const inChat = state.everRegistered;
  const room = chat.room(chat.active);
  const name = inChat && room ? room.name : TITLE;
  ui.room.textContent = name;
  ui.topic.textContent = inChat && room?.kind === "channel" ? room.topic : "";
  ui.topic.title = ui.topic.textContent;
  ui.me.textContent = inChat && chat.me ? chat.me : "";
  const total = inChat ? chat.unreadTotal() : 0;
  document.title = `${total ? `(${total}) ` : ""}${inChat && name !== TITLE ? `${name} - ${TITLE}` : TITLE}`;
  const channel = room?.kind === "channel";
  const op = channel && chat.isOp(room.key);
  ui.roomNote.textContent = channel && !room.joined ? room.note || "not joined" : modeText(room);
  ui.roomNote.classList.toggle("warn", channel && !room.joined);
  ui.rejoin.hidden = !(channel && !room.joined && chat.registered);
  ui.rejoin.setAttribute("aria-label", channel ? `Join ${room.name} again` : "Join again");
  ui.topicEdit.hidden = !(channel && room.joined && (op || !room.modes.has("t")));
  ui.modesOpen.hidden = !(channel && room.joined && op);
  ui.leave.hidden = !room || room.kind === "server";
  ui.leave.textContent = channel ? "Leave" : "Close";
  ui.leave.setAttribute("aria-label", channel ? `Leave ${room.name}` : room ? `Close ${roomLabel(room)}` : "Leave");
}

function modeText(room) {
  if (!room || room.kind !== "channel" || room.modes.size === 0) return "";
  return `modes +${[...room.modes.keys()].sort().join("")}`;
}

function renderUsers() {
  keepFocus(ui.userList, "nick", drawUsers);
}

function drawUsers() {
  const chat = state.chat;
  const room = chat.room(chat.active);
  const members = room ? chat.members(room.key) : [];
  ui.users.hidden = !room || room.kind !== "channel";
  ui.usersToggle.hidden = !state.everRegistered || ui.users.hidden;
  // Most lines change nobody: draw the list again only when what it shows changed.
  const drawn = [room?.key, chat.me, ...members.map((m) => `${chat.mark(m)}${m.nick}\n${m.away}`)].join("\n");
  if (drawn === state.usersDrawn) return;
  state.usersDrawn = drawn;
  ui.userList.replaceChildren(
    ...members.map((member) => {
      const item = el("li");
      const button = el("button", "member");
      button.type = "button";
      button.dataset.nick = member.nick;
      button.setAttribute("aria-haspopup", "menu");
      const mark = chat.mark(member);
      if (mark) button.append(el("span", "mark", mark));
      button.append(nickSpan(member.nick));
      const said = [member.nick];
      if (mark === "@") said.push("operator");
      if (mark === "+") said.push("voiced");
      if (chat.isMe(member.nick)) {
        button.append(el("span", "you", " (you)"));
        said.push("you");
      }
      if (member.away) {
        button.classList.add("away");
        button.title = `away: ${member.away}`;
        said.push("away");
      }
      button.setAttribute("aria-label", said.join(", "));
      item.append(button);
      return item;
    }),
  );
  const where = room ? room.name : "";
  ui.usersTitle.textContent = `In ${where} (${members.length})`;
  ui.usersToggle.textContent = `${members.length} user${members.length === 1 ? "" : "s"}`;
}

function render() {
  showActive();
  renderRooms();
  renderHeader();
  renderUsers();
  checkLength();
}

// Show a room: its log comes back where it was left.
function selectRoom(key) {
  if (!state.chat.room(key)) return;
  state.chat.select(key);
  closeDrawers();
  render();
}

// Put the model's active room on the page, keeping where each log was scrolled to.
function showActive() {
  const key = state.chat.active;
  if (state.shown === key && state.logs.get(key) && !state.logs.get(key).hidden) return;
  const old = state.logs.get(state.shown);
  if (old && !old.hidden) state.scroll.set(state.shown, { top: old.scrollTop, bottom: atBottom(old) });
  state.shown = key;
  const log = logFor(key);
  for (const [k, other] of state.logs) other.hidden = k !== key;
  const at = state.scroll.get(key);
  log.scrollTop = !at || at.bottom ? log.scrollHeight : at.top;
}

function stepRoom(step) {
  const keys = state.chat.ordered().map((r) => r.key);
  const at = keys.indexOf(state.chat.active);
  const next = keys[(at + step + keys.length) % keys.length];
  selectRoom(next);
  const room = state.chat.room(next);
  ui.announce.textContent = `${roomLabel(room)}${room.topic ? `: ${room.topic}` : ""}`;
}

// -- what the model says ---------------------------------------------------------

function apply(result) {
  showEntries(result.shown);
  for (const line of result.send) send(line);
  for (const event of result.events) onEvent(event);
  dropLogs();
  render();
}

function note(text, kind = "info") {
  const chat = state.chat;
  apply(chat.local(() => chat.note(chat.active, text, now(), kind)));
}

function onEvent(event) {
  switch (event.type) {
    case "registered":
      onRegistered(event.nick);
      break;
    case "refused":
      onRefused(event.code, event.reason);
      break;
    case "mention":
      onMention(event.entry);
      break;
    case "list":
      renderPublic();
      break;
    case "nick":
      remember(event.nick);
      state.wanted = event.nick;
      break;
    default:
  }
}

function remember(nick) {
  try {
    localStorage.setItem("gevent-chat.nick", nick);
  } catch (err) {
    // private browsing: nothing to remember it in
  }
}

function onRegistered(nick) {
  const again = state.everRegistered;
  state.everRegistered = true;
  state.wanted = nick;
  state.retries = 0;
  state.nickTry = 0;
  state.quitting = false;
  remember(nick);
  ui.login.hidden = true;
  ui.chat.hidden = false;
  ui.composer.hidden = false;
  ui.roomsToggle.hidden = false;
  setState("online", "online");
  if (again) {
    for (const line of state.chat.rejoin()) send(line);
    return;
  }
  // Everyone starts in the lobby, as a line user does.
  state.chat.opening = state.chat.key(LOBBY);
  send(irc.format("JOIN", [LOBBY]));
  ui.input.focus();
}

function onRefused(code, reason) {
  if (code === "464") {
    state.stopped = true; // the server closes now; nothing to retry with until it is typed
    const error = state.password === null ? "This server needs a password." : "Wrong password.";
    state.password = null;
    ui.password.value = "";
    ui.passwordRow.hidden = false;
    showLogin({ error });
    ui.password.focus();
    return;
  }
  if (!["431", "432", "433", "436"].includes(code)) return;
  if (state.everRegistered && code === "433") {
    state.nickTry += 1; // held, perhaps by our own old connection: try nick_
    send(irc.format("NICK", [alternateNick(state.wanted, state.nickTry)]));
    return;
  }
  notJoined(); // connected, and waiting for another nick
  showLogin({ error: reason });
  ui.nick.select();
}

// A mention or a private message: said to a screen reader, and to the desktop if allowed.
function onMention(entry) {
  const chat = state.chat;
  const room = chat.room(entry.room);
  const who = entry.nick || "the server";
  const title = room?.kind === "query" ? `${who}, privately` : `${who} in ${room ? room.name : "the chat"}`;
  const looking = !document.hidden && entry.room === chat.active;
  if (!looking) ui.announce.textContent = `${title}: ${entry.text}`;
  if (looking || !("Notification" in window) || Notification.permission !== "granted") return;
  const shown = new Notification(title, {
    body: entry.text,
    tag: `gevent-chat ${entry.room}`,
  });
  shown.addEventListener("click", () => {
    window.focus();
    selectRoom(entry.room);
    shown.close();
  });
}

// -- the connection --------------------------------------------------------------

function send(line) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) {
    state.ws.send(line);
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
    ws = new WebSocket(url, [SUBPROTOCOL]);
  } catch (err) {
    onClose(null, { code: 1006 });
    return;
  }
  state.ws = ws;
  state.heard = false;
  ws.addEventListener("open", () => onOpen(ws));
  ws.addEventListener("message", (ev) => {
    if (ws !== state.ws) return;
    state.heard = true;
    if (typeof ev.data === "string") apply(state.chat.receive(ev.data, now()));
  });
  ws.addEventListener("close", (ev) => onClose(ws, ev));
}

function onOpen(ws) {
  if (ws !== state.ws) return;
  if (ws.protocol !== SUBPROTOCOL) {
    // A server that does not speak IRC here would take our lines for chat.
    state.stopped = true;
    state.heard = true; // reached: "not joined", not "offline"
    ui.loginError.textContent = "This server does not offer IRC over WebSocket.";
    ws.close(1000);
    return;
  }
  setState("connecting", "joining…");
  for (const line of state.chat.hello(alternateNick(state.wanted, state.nickTry), state.password)) send(line);
}

// Wait `delay` seconds, saying how many are left (whole seconds, counted
// down as they pass), then connect.
function reconnectIn(delay) {
  const due = performance.now() + delay * 1000;
  const tick = () => {
    const left = due - performance.now();
    if (left <= 0) {
      connect();
      return;
    }
    const seconds = Math.ceil(left / 1000);
    setState("reconnecting", `reconnecting in ${seconds} s`);
    state.retryTimer = setTimeout(tick, left - (seconds - 1) * 1000);
  };
  tick();
}

function onClose(ws, ev) {
  if (ws !== null && ws !== state.ws) return;
  state.ws = null;
  const chat = state.chat;
  const wasRegistered = chat.registered;
  if (wasRegistered) apply(chat.local(() => chat.disconnected(now(), state.quitting ? "you left" : "connection lost")));
  chat.registered = false;
  if (state.quitting) {
    setState("left", "left");
    showLogin({ note: "You left the chat." });
    return;
  }
  if (state.stopped || !state.everRegistered) {
    // Reached, and then closed (a refusal, a wrong password): not joined.  Never reached: offline.
    if (state.heard) notJoined();
    else setState("offline", "offline");
    if (!wasRegistered) showLogin({ error: ui.loginError.textContent || closeReason(ev) });
    return;
  }
  render();
  const delay = backoffDelay(state.retries, Math.random());
  state.retries += 1;
  reconnectIn(delay);
}

function closeReason(ev) {
  return ev && ev.code === 1006 && !state.heard ? "Could not reach the server." : "The server closed the connection.";
}

// Back to the login form, with a calm note or an error.
function showLogin({ note: said = "", error = "" }) {
  if (state.everRegistered && !state.quitting && !state.stopped) return;
  ui.login.hidden = false;
  ui.chat.hidden = true;
  ui.composer.hidden = true;
  ui.roomsToggle.hidden = true;
  ui.usersToggle.hidden = true;
  ui.loginNote.textContent = said;
  ui.loginError.textContent = error;
  if (state.quitting) {
    state.everRegistered = false;
    state.quitting = false;
    state.chat = new Chat(); // a new login starts afresh
    ui.logs.replaceChildren();
    state.logs.clear();
    state.scroll.clear();
  }
  renderHeader();
}

// -- typing ----------------------------------------------------------------------

ui.login.addEventListener("submit", (ev) => {
  ev.preventDefault();
  const nick = ui.nick.value.trim();
  ui.loginNote.textContent = "";
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
    return;
  }
  setState("connecting", "joining…");
  send(irc.format("NICK", [nick])); // the connection waits for a nick the server takes
});

// A typed line as it goes over the wire: one line, whatever was pasted.
const wireLine = (line) => line.replace(/[\r\n]+/g, " ");

function here() {
  const room = state.chat.room(state.chat.active);
  return { name: room.name, kind: room.kind };
}

// What the line would send, and by how many bytes it is over the limit.
function measure(line) {
  const result = irc.command(wireLine(line), here(), state.chat.support);
  const sizes = (result.send ?? []).map((m) => irc.measure(m, MAX_LINE_BYTES));
  const worst = sizes.reduce((a, b) => (b.bytes - b.limit > a.bytes - a.limit ? b : a), { bytes: 0, limit: 1 });
  return { result, ...worst, over: Math.max(0, worst.bytes - worst.limit) };
}

// Say at once, while typing, that the line is too long to send.
function checkLength() {
  const line = ui.input.value;
  const { bytes, limit, over } = line ? measure(line) : { over: 0 };
  ui.input.setAttribute("aria-invalid", String(over > 0));
  ui.inputHint.hidden = over === 0;
  ui.inputHint.textContent = over ? `${bytes} bytes, ${over} over the limit of ${limit}` : "";
}

function sendUserLine(line) {
  const chat = state.chat;
  const { result, bytes, limit, over } = measure(line);
  if (result.error) {
    note(result.error, "error");
    return false;
  }
  if (over) {
    note(`not sent: the line is ${bytes} bytes, the server takes at most ${limit}`, "error");
    return false;
  }
  if (result.help) {
    apply(chat.local(() => irc.HELP.forEach((text) => chat.note(chat.active, text, now()))));
    return true;
  }
  if (result.send.length && !(state.ws && state.ws.readyState === WebSocket.OPEN && chat.registered)) {
    note("not connected: the line was not sent", "error");
    return false;
  }
  if (result.quit) state.quitting = true;
  if (line.startsWith("/") && !line.startsWith("//") && !/^\/(me|msg|query|notice)\b/i.test(line)) {
    apply(chat.local(() => chat.add(chat.active, { kind: "command", text: line, self: true }, now())));
  }
  for (const message of result.send) {
    send(message);
    echo(message);
  }
  if (result.open) openRoom(result.open);
  if (result.close) closeRoom(result.close);
  if (result.list) openJoinDialog(false);
  return true;
}

// Without echo-message the server does not send our own messages back: show them as sent.
function echo(message) {
  const chat = state.chat;
  if (chat.caps.has("echo-message")) return;
  const msg = irc.parse(message);
  if (msg.command !== "PRIVMSG" && msg.command !== "NOTICE") return;
  const source = `${chat.me}!me@page`;
  apply(chat.receive(`:${source} ${message}`, now()));
}

function openRoom(name) {
  const chat = state.chat;
  if (irc.isChannel(name, chat.support)) {
    const key = chat.key(name);
    if (chat.room(key)?.joined) selectRoom(key);
    else chat.opening = key; // shown once the server says we are in
    return;
  }
  selectRoom(chat.open(name, "query").key);
}

function closeRoom(name) {
  const chat = state.chat;
  const room = chat.room(chat.key(name));
  if (!room) return;
  if (room.kind === "query" || !room.joined || !chat.registered) {
    chat.close(room.key); // nothing to tell the server
    dropLogs();
    selectRoom(chat.active);
  }
}

ui.composer.addEventListener("submit", (ev) => {
  ev.preventDefault();
  const line = ui.input.value;
  if (!line.trim()) return;
  if (sendUserLine(line)) {
    if (state.history[state.history.length - 1] !== line) state.history.push(line);
    if (state.history.length > MAX_HISTORY) state.history.shift();
    ui.input.value = "";
    checkLength();
  }
  state.historyAt = state.history.length;
});

ui.input.addEventListener("input", checkLength);

ui.input.addEventListener("keydown", (ev) => {
  if (ev.altKey || (ev.key !== "ArrowUp" && ev.key !== "ArrowDown")) return;
  const h = state.history;
  if (state.historyAt === h.length) state.draft = ui.input.value;
  const at = state.historyAt + (ev.key === "ArrowUp" ? -1 : 1);
  if (at < 0 || at > h.length) return;
  ev.preventDefault();
  state.historyAt = at;
  ui.input.value = at === h.length ? state.draft : h[at];
  ui.input.setSelectionRange(ui.input.value.length, ui.input.value.length);
  checkLength();
});

// -- keyboard: Alt+Up/Down between rooms, Escape closes what is open ----------------

document.addEventListener("keydown", (ev) => {
  if (ev.altKey && (ev.key === "ArrowUp" || ev.key === "ArrowDown") && state.everRegistered) {
    ev.preventDefault();
    stepRoom(ev.key === "ArrowUp" ? -1 : 1);
  } else if (ev.key === "Escape" && !ui.joinDialog.open) {
    if (!ui.menu.hidden) closeMenu();
    else closeDrawers();
  }
});

// -- drawers (a phone) -----------------------------------------------------------

function toggleDrawer(panel, button) {
  const open = !panel.classList.contains("open");
  closeDrawers();
  panel.classList.toggle("open", open);
  button.setAttribute("aria-expanded", String(open));
  if (open) panel.querySelector("button")?.focus();
}

function closeDrawers() {
  for (const [panel, button] of [
    [ui.sidebar, ui.roomsToggle],
    [ui.users, ui.usersToggle],
  ]) {
    if (panel.classList.contains("open") && panel.contains(document.activeElement)) button.focus();
    panel.classList.remove("open");
    button.setAttribute("aria-expanded", "false");
  }
}

ui.roomsToggle.addEventListener("click", () => toggleDrawer(ui.sidebar, ui.roomsToggle));
ui.usersToggle.addEventListener("click", () => toggleDrawer(ui.users, ui.usersToggle));

ui.roomList.addEventListener("click", (ev) => {
  const button = ev.target.closest("button.room-entry");
  if (!button) return;
  selectRoom(button.dataset.room);
  ui.input.focus();
});

// -- menus: a member's actions, a room's modes ------------------------------------

function openMenu(from, label, items) {
  closeMenu();
  ui.menu.setAttribute("aria-label", label);
  ui.menu.replaceChildren(
    ...items.map(({ text, run, checked }) => {
      const item = el("button", "menu-item", text);
      item.type = "button";
      item.setAttribute("role", checked === undefined ? "menuitem" : "menuitemcheckbox");
      if (checked !== undefined) item.setAttribute("aria-checked", String(checked));
      item.tabIndex = -1;
      item.addEventListener("click", () => {
        closeMenu();
        run();
      });
      return item;
    }),
  );
  state.menuFrom = from;
  from.setAttribute("aria-expanded", "true");
  ui.menu.hidden = false;
  const box = from.getBoundingClientRect();
  const width = ui.menu.offsetWidth;
  const height = ui.menu.offsetHeight;
  ui.menu.style.left = `${Math.max(4, Math.min(box.left, innerWidth - width - 4))}px`;
  ui.menu.style.top = `${box.bottom + height + 4 > innerHeight ? Math.max(4, box.top - height - 2) : box.bottom + 2}px`;
  ui.menu.firstElementChild?.focus();
}

function closeMenu() {
  if (ui.menu.hidden) return;
  ui.menu.hidden = true;
  let from = state.menuFrom;
  state.menuFrom = null;
  if (from && !from.isConnected && from.dataset.nick !== undefined) {
    from = findButton(ui.userList, "nick", from.dataset.nick); // the list was drawn again meanwhile
  }
  if (from && from.isConnected) {
    from.setAttribute("aria-expanded", "false");
    from.focus();
  } else {
    ui.input.focus();
  }
}

ui.menu.addEventListener("keydown", (ev) => {
  const items = [...ui.menu.children];
  const at = items.indexOf(document.activeElement);
  const go = { ArrowDown: at + 1, ArrowUp: at - 1, Home: 0, End: items.length - 1 }[ev.key];
  if (go !== undefined) {
    ev.preventDefault();
    items[(go + items.length) % items.length].focus();
  } else if (ev.key === "Tab") {
    ev.preventDefault();
    closeMenu();
  }
});

document.addEventListener("pointerdown", (ev) => {
  if (!ui.menu.hidden && !ui.menu.contains(ev.target) && ev.target !== state.menuFrom) closeMenu();
  // A drawer closes when the page beside it is touched (its own button toggles it).
  for (const [panel, button] of [
    [ui.sidebar, ui.roomsToggle],
    [ui.users, ui.usersToggle],
  ]) {
    const inside = panel.contains(ev.target) || button.contains(ev.target) || ui.menu.contains(ev.target);
    if (panel.classList.contains("open") && !inside) {
      panel.classList.remove("open");
      button.setAttribute("aria-expanded", "false");
    }
  }
});

// Send one command typed by a control, as if typed in the room.
function run(line) {
  return () => sendUserLine(line);
}

function memberItems(nick) {
  const chat = state.chat;
  const key = chat.active;
  const member = chat.room(key)?.members.get(chat.key(nick));
  const items = [{ text: "Who is this?", run: run(`/whois ${nick}`) }];
  if (chat.isMe(nick)) return items;
  items.unshift({
    text: "Private message",
    run: () => {
      openRoom(nick);
      ui.input.focus();
    },
  });
  if (!chat.isOp(key) || !member) return items;
  const has = (mode) => member.modes.includes(mode);
  items.push(
    { text: has("o") ? "Take operator (-o)" : "Make operator (+o)", run: run(`/${has("o") ? "deop" : "op"} ${nick}`) },
    { text: has("v") ? "Take voice (-v)" : "Give voice (+v)", run: run(`/${has("v") ? "devoice" : "voice"} ${nick}`) },
    { text: "Kick", run: run(`/kick ${nick}`) },
    // The server puts out the members a new ban matches: no separate kick.
    { text: "Ban", run: run(`/ban ${nick}`) },
  );
  return items;
}

ui.userList.addEventListener("click", (ev) => {
  const button = ev.target.closest("button.member");
  if (button) openMenu(button, `${button.dataset.nick}: actions`, memberItems(button.dataset.nick));
});

// Channel flags an operator can switch from the menu, by their usual meaning.
const FLAG_NAMES = {
  i: "Invite only",
  m: "Moderated: only @ and + speak",
  n: "No messages from outside",
  s: "Secret",
  t: "Only operators set the topic",
};

ui.modesOpen.addEventListener("click", () => {
  const chat = state.chat;
  const room = chat.room(chat.active);
  if (!room || room.kind !== "channel") return;
  const flags = [...chat.support.chanmodes[3]].filter((m) => m in FLAG_NAMES);
  const items = flags.map((m) => ({
    text: `${FLAG_NAMES[m]} (+${m})`,
    checked: room.modes.has(m),
    run: run(`/mode ${room.modes.has(m) ? "-" : "+"}${m}`),
  }));
  items.push({ text: "Show the ban list", run: run(`/mode ${room.name} +b`) });
  openMenu(ui.modesOpen, `${room.name}: modes`, items);
});

ui.topicEdit.addEventListener("click", () => {
  const room = state.chat.room(state.chat.active);
  ui.input.value = `/topic ${room.topic}`;
  ui.input.focus();
  checkLength();
});

ui.rejoin.addEventListener("click", () => {
  const room = state.chat.room(state.chat.active);
  if (room) sendUserLine(`/join ${room.name}`);
  ui.input.focus();
});

ui.leave.addEventListener("click", () => {
  const room = state.chat.room(state.chat.active);
  if (room && room.kind !== "server") sendUserLine(`/part ${room.kind === "channel" ? room.name : ""}`.trim());
  ui.input.focus();
});

// -- joining: by name, or from the server's public rooms --------------------------

function openJoinDialog(ask = true) {
  if (!ui.joinDialog.open) ui.joinDialog.showModal();
  ui.joinName.focus();
  if (ask) {
    if (!send(irc.format("LIST"))) ui.publicNote.textContent = "not connected";
    else ui.publicNote.textContent = "asking the server…";
  } else {
    ui.publicNote.textContent = "asking the server…";
  }
}

function renderPublic() {
  const chat = state.chat;
  const rooms = chat.publicRooms;
  ui.publicNote.textContent = rooms.length ? `${rooms.length} room${rooms.length === 1 ? "" : "s"}` : "no public rooms";
  ui.publicList.replaceChildren(
    ...rooms.map(({ name, users, topic }) => {
      const item = el("li", "public-room");
      const joined = chat.room(chat.key(name))?.joined;
      const button = el("button", "quiet", joined ? "Open" : "Join");
      button.type = "button";
      button.setAttribute("aria-label", `${joined ? "Open" : "Join"} ${name}`);
      button.addEventListener("click", () => {
        ui.joinDialog.close();
        if (joined) selectRoom(chat.key(name));
        else sendUserLine(`/join ${name}`);
        ui.input.focus();
      });
      const what = el("span", "what");
      what.append(el("span", "name", name), el("span", "size", ` ${users} user${users === 1 ? "" : "s"}`));
      if (topic) what.append(el("span", "topic", topic));
      item.append(what, button);
      return item;
    }),
  );
}

ui.joinOpen.addEventListener("click", () => openJoinDialog());
ui.publicRefresh.addEventListener("click", () => openJoinDialog());
ui.joinClose.addEventListener("click", () => ui.joinDialog.close());
ui.joinForm.addEventListener("submit", (ev) => {
  ev.preventDefault();
  const name = ui.joinName.value.trim();
  if (!name) return;
  ui.joinDialog.close();
  ui.joinName.value = "";
  sendUserLine(`/join ${name}`);
  ui.input.focus();
});

// -- notifications and the tab title ---------------------------------------------

function renderNotify() {
  ui.notify.hidden = !("Notification" in window) || Notification.permission !== "default";
}

ui.notify.addEventListener("click", async () => {
  await Notification.requestPermission();
  renderNotify();
});

document.addEventListener("visibilitychange", () => {
  state.chat.setHidden(document.hidden);
  render();
});

try {
  ui.nick.value = localStorage.getItem("gevent-chat.nick") || "";
} catch (err) {
  // no storage: start empty
}
state.chat.setHidden(document.hidden);
renderNotify();
renderHeader();

// For tests and the curious: the ported rules, the IRC codec, and the state.
window.geventChat = Object.freeze({
  nickColour,
  casefold,
  backoffDelay,
  alternateNick,
  irc,
  Chat,
  SERVER,
  state,
});
