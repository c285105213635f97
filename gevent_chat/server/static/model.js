// What the page knows of the chat: the rooms and conversations it is in,
// their members, topics, modes and lines, and what is unread.  PURE: no DOM,
// no clock (`now` is passed in), no socket.  receive() takes one message
// from the server and says what to send back and what to show; app.js draws
// the result and owns the WebSocket.

import { sanitise } from "./rules.js";
import { defaultSupport, format, isChannel, nameKey, parse, readModes, readName, readSupport } from "./irc.js";

// The server's window: its notices, the MOTD, replies that belong to no room.
export const SERVER = "";
// Capabilities the page asks for, when offered.
export const WANTED_CAPS = ["away-notify", "batch", "echo-message", "message-tags", "multi-prefix", "server-time"];
// Lines kept per room (the oldest go first).
export const MAX_LINES = 2000;

const SHOWN_AT_START = new Set(["001", "002", "003", "004", "251", "252", "253", "254", "255", "265", "266", "372", "375", "376", "422"]);
const TALK = new Set(["chat", "action", "notice"]);

function newRoom(key, name, kind) {
  return {
    key,
    name,
    kind, // "server", "channel" or "query"
    topic: "",
    members: new Map(), // nameKey -> {nick, modes: ["o", "v"], away}
    modes: new Map(), // channel mode -> its argument ("" for a flag)
    joined: false, // the server has us in it now
    wanted: kind === "channel", // rejoin it after a reconnect
    note: "", // why we are not in it (kicked, banned, offline)
    lines: [],
    unread: 0,
    mention: false,
  };
}

export class Chat {
  constructor() {
    this.support = defaultSupport();
    this.me = null;
    this.registered = false;
    this.offered = new Set(); // CAP LS
    this.caps = new Set(); // acknowledged
    this.rooms = new Map([[SERVER, newRoom(SERVER, "server", "server")]]);
    this.active = SERVER;
    this.hidden = false; // the page is not being looked at: the active room gets unreads too
    this.opening = null; // the room a /join asked for: shown when joined
    this.batches = new Map(); // reference -> type
    this.names = new Map(); // room key -> members being listed (353 until 366)
    this.listing = null; // LIST replies being collected
    this.publicRooms = []; // the last complete LIST: [{name, users, topic}]
    this.askedModes = new Set(); // rooms whose modes the page asked for itself (RPL_CHANNELMODEIS not shown)
    this.seq = 0;
    this.result = { send: [], shown: [], events: [] }; // what the message being handled did
  }

  key(name) {
    return nameKey(name, this.support);
  }

  isMe(nick) {
    return this.me !== null && nick !== null && this.key(nick) === this.key(this.me);
  }

  room(key) {
    return this.rooms.get(key) ?? null;
  }

  // The room for a channel or a conversation with a nick, made if new.
  open(name, kind) {
    const key = this.key(name);
    let room = this.rooms.get(key);
    if (!room) {
      room = newRoom(key, name, kind);
      this.rooms.set(key, room);
    }
    return room;
  }

  close(key) {
    if (key === SERVER) return;
    this.rooms.delete(key);
    if (this.active === key) this.active = [...this.rooms.keys()].at(-1) ?? SERVER;
  }

  select(key) {
    const room = this.rooms.get(key);
    if (!room) return;
    this.active = key;
    if (!this.hidden) {
      room.unread = 0;
      room.mention = false;
    }
  }

  setHidden(hidden) {
    this.hidden = hidden;
    if (!hidden) this.select(this.active);
  }

  // Rooms in the order of the list: the server's window, channels, conversations.
  ordered() {
    const rank = { server: 0, channel: 1, query: 2 };
    return [...this.rooms.values()].sort((a, b) => rank[a.kind] - rank[b.kind] || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  unreadTotal() {
    let total = 0;
    for (const room of this.rooms.values()) total += room.unread;
    return total;
  }

  // The channel modes that our nick has in a room ("o", "v").
  myModes(key) {
    const me = this.me === null ? null : this.rooms.get(key)?.members.get(this.key(this.me));
    return me ? me.modes : [];
  }

  isOp(key) {
    return this.myModes(key).includes("o");
  }

  // A room's members, operators first, then voiced, then by name.
  members(key) {
    const room = this.rooms.get(key);
    if (!room) return [];
    const rank = (m) => {
      const i = Math.min(...m.modes.map((mode) => this.support.prefixModes.indexOf(mode)).filter((n) => n >= 0));
      return Number.isFinite(i) ? i : this.support.prefixModes.length;
    };
    return [...room.members.values()].sort((a, b) => rank(a) - rank(b) || (this.key(a.nick) < this.key(b.nick) ? -1 : 1));
  }

  // The highest status mark of a member ("@", "+" or "").
  mark(member) {
    const { prefixModes, prefixMarks } = this.support;
    for (let i = 0; i < prefixModes.length; i++) if (member.modes.includes(prefixModes[i])) return prefixMarks[i];
    return "";
  }

  // -- the connection's life -----------------------------------------------------------

  // What a new connection sends first.  Registration waits for CAP END.
  hello(nick, password) {
    this.registered = false;
    this.offered = new Set();
    this.caps = new Set();
    this.batches.clear();
    this.names.clear();
    this.support = defaultSupport();
    const lines = [format("CAP", ["LS", "302"])];
    if (password) lines.push(format("PASS", [password]));
    lines.push(format("NICK", [nick]), format("USER", [nick.replace(/[^A-Za-z0-9_-]/g, "") || "web", "0", "*", nick]));
    return lines;
  }

  // The connection is gone: every room is left (their members with it) until rejoined.
  disconnected(now, why) {
    this.registered = false;
    for (const room of this.rooms.values()) {
      if (room.kind !== "channel") continue;
      if (room.joined) this.add(room.key, { kind: "event", text: why }, now);
      room.joined = false;
      room.members.clear();
    }
  }

  // The JOINs that bring us back into every room we were in.
  rejoin() {
    const names = [...this.rooms.values()].filter((r) => r.kind === "channel" && r.wanted).map((r) => r.name);
    return names.length ? [format("JOIN", [names.join(",")])] : [];
  }

  // -- lines ------------------------------------------------------------------------------

  // Add a line to a room: {kind, nick?, text, self?, mention?, history?}; counts unreads.
  // Returns the entry, or null for a history line the room has already.
  add(key, line, now, tags = null) {
    const room = this.rooms.get(key) ?? this.rooms.get(SERVER);
    const stamp = tags?.time ? Date.parse(tags.time) : NaN;
    const text = sanitise(line.text);
    if (line.history && room.lines.some((e) => e.time === stamp && e.text === text && e.nick === (line.nick ?? ""))) {
      return null; // replayed again on a rejoin: already here
    }
    this.seq += 1;
    const entry = {
      id: this.seq,
      room: room.key,
      kind: line.kind,
      nick: line.nick ?? "",
      text,
      time: Number.isNaN(stamp) ? now : stamp,
      stamped: !Number.isNaN(stamp), // the time is the server's
      history: line.history ?? false,
      self: line.self ?? false,
      mention: line.mention ?? false,
    };
    room.lines.push(entry);
    if (room.lines.length > MAX_LINES) room.lines.splice(0, room.lines.length - MAX_LINES);
    if ((TALK.has(entry.kind) || entry.mention) && !entry.history && !entry.self && (room.key !== this.active || this.hidden)) {
      room.unread += 1;
      if (entry.mention) room.mention = true;
    }
    this.result.shown.push(entry);
    return entry;
  }

  note(key, text, now, kind = "info") {
    return this.add(key, { kind, text }, now);
  }

  // Does `text` name our nick, as a whole word?
  mentions(text) {
    if (this.me === null) return false;
    const me = this.key(this.me);
    return text.split(/[^\p{L}\p{N}_\-[\]\\`^{}|]+/u).some((word) => word && this.key(word) === me);
  }

  // -- one message from the server --------------------------------------------------------

  // Returns {send: [lines], shown: [entries], events: [{type, ...}]}.
  receive(line, now) {
    this.result = { send: [], shown: [], events: [] };
    const msg = parse(line);
    if (msg !== null) {
      const handler = HANDLERS[msg.command];
      if (handler) handler(this, msg, now);
      else if (/^\d{3}$/.test(msg.command)) this.numeric(msg, now);
    }
    const result = this.result;
    this.result = { send: [], shown: [], events: [] };
    return result;
  }

  // Lines added by the page itself (its notes, errors, /help).
  local(fn) {
    this.result = { send: [], shown: [], events: [] };
    fn();
    const result = this.result;
    this.result = { send: [], shown: [], events: [] };
    return result;
  }

  event(type, fields = {}) {
    this.result.events.push({ type, ...fields });
  }

  isHistory(msg) {
    const ref = msg.tags.batch;
    return ref !== undefined && this.batches.has(ref);
  }

  numeric(msg, now) {
    const [, first = ""] = msg.params;
    const text = msg.params.slice(1).join(" ");
    const code = Number(msg.command);
    if (SHOWN_AT_START.has(msg.command)) {
      this.note(SERVER, msg.command === "004" ? text : msg.params.at(-1), now);
      return;
    }
    const room = isChannel(first, this.support) ? this.rooms.get(this.key(first)) : null;
    if (code >= 400) {
      if (!this.registered) this.event("refused", { code: msg.command, reason: msg.params.at(-1) });
      if (room && (code === 471 || code === 473 || code === 474 || code === 475)) {
        room.wanted = false;
        room.note = msg.params.at(-1);
      }
      this.note(room ? room.key : this.active, `${msg.params.slice(1, -1).join(" ")}${msg.params.length > 2 ? ": " : ""}${msg.params.at(-1)}`, now, "error");
      return;
    }
    this.note(room ? room.key : this.active, text, now);
  }
}

// -- what each command does to the model ----------------------------------------------------

function privmsg(chat, msg, now, kind) {
  let [target = "", text = ""] = msg.params;
  const self = chat.isMe(msg.nick);
  // STATUSMSG ("@#room"): for the room's operators; shown in the room.
  const bare = target.replace(new RegExp(`^[${escapeClass(chat.support.prefixMarks)}]+`, "u"), "");
  let lineKind = kind;
  const ctcp = /^\u0001(\S+) ?(.*?)\u0001?$/su.exec(text);
  if (ctcp) {
    if (ctcp[1].toUpperCase() !== "ACTION") return; // other CTCP requests are not answered
    lineKind = "action";
    text = ctcp[2];
  }
  const history = chat.isHistory(msg);
  let key;
  if (isChannel(bare, chat.support)) {
    key = chat.key(bare);
    if (!chat.rooms.has(key)) return; // a room we are not in any more
  } else if (msg.nick === null || !msg.source.includes("!") || target === "*") {
    key = kind === "notice" ? chat.active : SERVER; // from the server itself
    if (!chat.registered || chat.rooms.get(key)?.kind !== "channel") key = SERVER;
    chat.add(key, { kind: "notice", nick: "", text, history }, now, msg.tags);
    return;
  } else if (kind === "notice" && !self) {
    key = chat.rooms.has(chat.key(msg.nick)) ? chat.key(msg.nick) : chat.active;
  } else {
    key = chat.open(self ? target : msg.nick, "query").key;
  }
  const mention = !self && !history && (chat.rooms.get(key).kind === "query" || chat.mentions(text));
  const entry = chat.add(key, { kind: lineKind, nick: msg.nick, text, self, mention, history }, now, msg.tags);
  if (mention) chat.event("mention", { entry });
}

const escapeClass = (chars) => chars.replace(/[\]\\^-]/g, "\\$&");

function join(chat, msg, now) {
  const [name = ""] = msg.params;
  if (chat.isMe(msg.nick)) {
    const room = chat.open(name, "channel");
    room.name = name; // the server's spelling
    room.joined = true;
    room.wanted = true;
    room.note = "";
    room.members.clear();
    room.members.set(chat.key(msg.nick), { nick: msg.nick, modes: [], away: "" });
    chat.add(room.key, { kind: "event", text: `you joined ${name}` }, now, msg.tags);
    if (chat.opening === room.key) {
      chat.opening = null;
      chat.select(room.key);
    }
    chat.askedModes.add(room.key);
    chat.result.send.push(format("MODE", [room.name])); // its modes, for the header and the controls
    chat.event("joined", { key: room.key });
    return;
  }
  const room = chat.rooms.get(chat.key(name));
  if (!room) return;
  room.members.set(chat.key(msg.nick), { nick: msg.nick, modes: [], away: "" });
  chat.add(room.key, { kind: "event", nick: msg.nick, text: `${msg.nick} joined`, history: chat.isHistory(msg) }, now, msg.tags);
}

function part(chat, msg, now) {
  const [name = "", reason = ""] = msg.params;
  const room = chat.rooms.get(chat.key(name));
  if (!room) return;
  if (chat.isMe(msg.nick)) {
    chat.close(room.key);
    chat.event("parted", { key: room.key });
    return;
  }
  room.members.delete(chat.key(msg.nick));
  chat.add(room.key, { kind: "event", nick: msg.nick, text: `${msg.nick} left${reason ? ` (${reason})` : ""}` }, now, msg.tags);
}

function kick(chat, msg, now) {
  const [name = "", nick = "", reason = ""] = msg.params;
  const room = chat.rooms.get(chat.key(name));
  if (!room) return;
  const why = reason && reason !== msg.nick ? ` (${reason})` : "";
  if (chat.isMe(nick)) {
    room.joined = false;
    room.wanted = false;
    room.members.clear();
    room.note = `you were kicked by ${msg.nick}${why}`;
    const entry = chat.add(room.key, { kind: "event", text: room.note, mention: true }, now, msg.tags);
    chat.event("mention", { entry });
    return;
  }
  room.members.delete(chat.key(nick));
  chat.add(room.key, { kind: "event", text: `${msg.nick} kicked ${nick}${why}` }, now, msg.tags);
}

function quit(chat, msg, now) {
  const [reason = ""] = msg.params;
  const key = chat.key(msg.nick ?? "");
  for (const room of chat.rooms.values()) {
    if (room.members.delete(key) || (room.kind === "query" && room.key === key)) {
      chat.add(room.key, { kind: "event", nick: msg.nick, text: `${msg.nick} quit${reason ? ` (${reason})` : ""}` }, now, msg.tags);
    }
  }
}

function nick(chat, msg, now) {
  const [next = ""] = msg.params;
  const old = chat.key(msg.nick ?? "");
  const self = chat.isMe(msg.nick);
  if (self) chat.me = next;
  const text = self ? `you are now known as ${next}` : `${msg.nick} is now known as ${next}`;
  for (const room of chat.rooms.values()) {
    const member = room.members.get(old);
    if (member) {
      room.members.delete(old);
      room.members.set(chat.key(next), { ...member, nick: next });
    }
    if (member || (room.kind === "query" && room.key === old) || (self && room.kind === "server")) {
      chat.add(room.key, { kind: "event", text }, now, msg.tags);
    }
  }
  const query = chat.rooms.get(old);
  if (query?.kind === "query" && !chat.rooms.has(chat.key(next))) {
    chat.rooms.delete(old);
    Object.assign(query, { key: chat.key(next), name: next });
    chat.rooms.set(query.key, query);
    if (chat.active === old) chat.active = query.key;
  }
  if (self) chat.event("nick", { nick: next });
}

function topic(chat, msg, now) {
  const [name = "", text = ""] = msg.params;
  const room = chat.rooms.get(chat.key(name));
  if (!room) return;
  room.topic = text;
  const said = text ? `${msg.nick} set the topic: ${text}` : `${msg.nick} cleared the topic`;
  chat.add(room.key, { kind: "event", text: said }, now, msg.tags);
}

function mode(chat, msg, now) {
  const [target = "", ...rest] = msg.params;
  if (!isChannel(target, chat.support)) {
    chat.note(SERVER, `your modes: ${rest.join(" ")}`, now);
    return;
  }
  const room = chat.rooms.get(chat.key(target));
  if (!room) return;
  const banned = applyModes(chat, room, rest);
  chat.add(room.key, { kind: "event", text: `${msg.nick} sets mode ${rest.join(" ")}` }, now, msg.tags);
  // A ban may put members out, and the server tells the room, but not always the one who set it:
  // ask who is left rather than guess from the mask.
  if (banned && chat.isMe(msg.nick)) chat.result.send.push(format("NAMES", [room.name]));
}

// Apply a channel's mode changes; true if one was a new ban.
function applyModes(chat, room, params) {
  const { prefixModes, chanmodes } = chat.support;
  let banned = false;
  for (const { set, mode, arg } of readModes(params, chat.support)) {
    if (set && mode === "b") banned = true;
    if (prefixModes.includes(mode)) {
      const member = arg === null ? null : room.members.get(chat.key(arg));
      if (!member) continue;
      member.modes = member.modes.filter((m) => m !== mode);
      if (set) member.modes.push(mode);
    } else if (!chanmodes[0].includes(mode)) {
      if (set) room.modes.set(mode, arg ?? "");
      else room.modes.delete(mode);
    }
  }
  return banned;
}

function cap(chat, msg, now) {
  const [, sub = "", ...rest] = msg.params;
  const list = rest.at(-1) ?? "";
  const more = rest.length > 1 && rest[0] === "*";
  switch (sub.toUpperCase()) {
    case "LS": {
      for (const item of list.split(" ").filter(Boolean)) chat.offered.add(item.split("=")[0]);
      if (more || chat.registered) return;
      const wanted = WANTED_CAPS.filter((c) => chat.offered.has(c));
      chat.result.send.push(wanted.length ? format("CAP", ["REQ", wanted.join(" ")]) : format("CAP", ["END"]));
      return;
    }
    case "ACK":
      for (const item of list.split(" ").filter(Boolean)) {
        if (item.startsWith("-")) chat.caps.delete(item.slice(1));
        else chat.caps.add(item);
      }
      if (!chat.registered) chat.result.send.push(format("CAP", ["END"]));
      return;
    case "NAK":
      if (!chat.registered) chat.result.send.push(format("CAP", ["END"]));
      return;
    case "NEW":
    case "DEL":
      return; // nothing the page needs comes and goes
    default:
      chat.note(SERVER, `CAP ${msg.params.slice(1).join(" ")}`, now);
  }
}

function batch(chat, msg) {
  const [ref = "", type = ""] = msg.params;
  if (ref.startsWith("+")) chat.batches.set(ref.slice(1), type);
  else if (ref.startsWith("-")) chat.batches.delete(ref.slice(1));
}

function welcome(chat, msg, now) {
  chat.me = msg.params[0];
  chat.registered = true;
  chat.note(SERVER, msg.params.at(-1), now);
  chat.event("registered", { nick: chat.me });
}

function names(chat, msg) {
  const [, , name = "", list = ""] = msg.params;
  const key = chat.key(name);
  if (!chat.rooms.has(key)) return;
  const pending = chat.names.get(key) ?? new Map();
  for (const item of list.split(" ").filter(Boolean)) {
    const member = readName(item, chat.support);
    const old = chat.rooms.get(key).members.get(chat.key(member.nick));
    pending.set(chat.key(member.nick), { nick: member.nick, modes: member.modes, away: old?.away ?? "" });
  }
  chat.names.set(key, pending);
}

function endOfNames(chat, msg) {
  const key = chat.key(msg.params[1] ?? "");
  const room = chat.rooms.get(key);
  if (room && chat.names.has(key)) room.members = chat.names.get(key);
  chat.names.delete(key);
}

function topicReply(chat, msg, now) {
  const [, name = "", text = ""] = msg.params;
  const room = chat.rooms.get(chat.key(name));
  if (!room) return;
  const changed = room.topic !== (msg.command === "331" ? "" : text);
  room.topic = msg.command === "331" ? "" : text;
  if (changed && room.topic) chat.add(room.key, { kind: "info", text: `topic: ${room.topic}` }, now, msg.tags);
}

function channelModes(chat, msg, now) {
  const [, name = "", ...modes] = msg.params;
  const room = chat.rooms.get(chat.key(name));
  if (!room) return;
  room.modes.clear();
  applyModes(chat, room, modes);
  if (chat.askedModes.delete(room.key)) return; // the page asked on joining: the header shows them
  chat.add(room.key, { kind: "info", text: `modes: ${modes.join(" ")}` }, now, msg.tags);
}

function listed(chat, msg) {
  const [, name = "", users = "0", text = ""] = msg.params;
  chat.listing = chat.listing ?? [];
  chat.listing.push({ name, users: Number(users) || 0, topic: sanitise(text) });
}

function listEnd(chat) {
  chat.publicRooms = (chat.listing ?? []).sort((a, b) => b.users - a.users || (a.name < b.name ? -1 : 1));
  chat.listing = null;
  chat.event("list");
}

function away(chat, msg) {
  const [text = ""] = msg.params;
  for (const room of chat.rooms.values()) {
    const member = room.members.get(chat.key(msg.nick ?? ""));
    if (member) member.away = text;
  }
}

function invite(chat, msg, now) {
  const [, name = ""] = msg.params;
  const line = { kind: "notice", nick: msg.nick, text: `invites you to ${name}: /join ${name}`, mention: true };
  const entry = chat.add(chat.active, line, now, msg.tags);
  chat.event("mention", { entry });
}

const HANDLERS = {
  PING: (chat, msg) => chat.result.send.push(format("PONG", msg.params.slice(0, 1))),
  PRIVMSG: (chat, msg, now) => privmsg(chat, msg, now, "chat"),
  NOTICE: (chat, msg, now) => privmsg(chat, msg, now, "notice"),
  JOIN: join,
  PART: part,
  KICK: kick,
  QUIT: quit,
  NICK: nick,
  TOPIC: topic,
  MODE: mode,
  CAP: cap,
  BATCH: batch,
  AWAY: away,
  INVITE: invite,
  ERROR: (chat, msg, now) => {
    chat.note(chat.registered ? chat.active : SERVER, msg.params.at(-1) ?? "", now, "error");
    chat.event("error", { reason: msg.params.at(-1) ?? "" });
  },
  "001": welcome,
  "005": (chat, msg) => {
    chat.support = readSupport(chat.support, msg.params.slice(1, -1));
    if (chat.support.network) chat.rooms.get(SERVER).name = chat.support.network;
  },
  "321": () => {},
  "322": listed,
  "323": listEnd,
  "324": channelModes,
  "329": () => {},
  "331": topicReply,
  "332": topicReply,
  "333": () => {},
  "353": names,
  "366": endOfNames,
};
