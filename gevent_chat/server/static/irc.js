// IRC messages in and out, as the IRCv3 WebSocket spec carries them: one
// message per text frame, no line ending.  PURE: no DOM, no clock, no socket.
//
// parse() reads what the server sends (message-tags unescaped, the source
// split into nick, the trailing parameter joined); format() writes what the
// page sends and refuses what would change the message's meaning (a line
// break, a NUL, a space in a middle parameter).  command() turns what the
// user types ("/kick bob spam") into those messages.

import { casefold, utf8Bytes } from "./rules.js";

// RFC 1459: 512 bytes with CR LF, so 510 for what follows the tags.
export const MAX_BODY_BYTES = 510;

const TAG_UNESCAPES = { ":": ";", s: " ", "\\": "\\", r: "\r", n: "\n" };
const TAG_ESCAPES = { ";": "\\:", " ": "\\s", "\\": "\\\\", "\r": "\\r", "\n": "\\n" };

// IRCv3 message-tags: "\:" is ";", "\s" a space, "\\" a backslash, "\r" and
// "\n" themselves; any other escaped character stands for itself and a lone
// trailing backslash is dropped.
export function unescapeTag(value) {
  return value.replace(/\\(.?)/gsu, (_, c) => (c in TAG_UNESCAPES ? TAG_UNESCAPES[c] : c));
}

export function escapeTag(value) {
  return value.replace(/[; \\\r\n]/g, (c) => TAG_ESCAPES[c]);
}

function parseTags(section) {
  const tags = Object.create(null);
  for (const item of section.split(";")) {
    if (!item) continue;
    const eq = item.indexOf("=");
    const key = eq < 0 ? item : item.slice(0, eq);
    tags[key] = eq < 0 ? "" : unescapeTag(item.slice(eq + 1));
  }
  return tags;
}

// The nick of a source "nick!user@host" (or the server's name).
export function sourceNick(source) {
  if (source === null) return null;
  const end = source.search(/[!@]/);
  return end < 0 ? source : source.slice(0, end);
}

// One received message: {tags, source, nick, command, params}, or null for
// a line with no command (empty, tags only, a source only).
export function parse(line) {
  let rest = line;
  let tags = Object.create(null);
  let source = null;
  if (rest.startsWith("@")) {
    const space = rest.indexOf(" ");
    if (space < 0) return null;
    tags = parseTags(rest.slice(1, space));
    rest = rest.slice(space + 1).replace(/^ +/, "");
  }
  if (rest.startsWith(":")) {
    const space = rest.indexOf(" ");
    if (space < 0) return null;
    source = rest.slice(1, space);
    rest = rest.slice(space + 1).replace(/^ +/, "");
  }
  if (rest.startsWith(":")) return null; // a trailing parameter and no command
  let trailing = null;
  const colon = rest.indexOf(" :");
  if (colon >= 0) {
    trailing = rest.slice(colon + 2);
    rest = rest.slice(0, colon);
  }
  const words = rest.split(" ").filter(Boolean);
  if (words.length === 0) return null;
  const command = words.shift().toUpperCase();
  if (trailing !== null) words.push(trailing);
  return { tags, source, nick: sourceNick(source), command, params: words };
}

// One message to send.  The last parameter becomes trailing when it must;
// throws for a parameter that could not survive the trip.
export function format(command, params = [], tags = null) {
  const parts = [];
  if (tags) {
    const items = Object.entries(tags).map(([k, v]) => (v === "" ? k : `${k}=${escapeTag(v)}`));
    if (items.length) parts.push(`@${items.join(";")}`);
  }
  if (!/^[A-Za-z]+$|^\d{3}$/.test(command)) throw new Error(`not a command: ${command}`);
  parts.push(command.toUpperCase());
  params.forEach((param, i) => {
    if (/[\r\n\0]/.test(param)) throw new Error("a line break cannot be sent");
    const last = i === params.length - 1;
    if (!last && (param === "" || param.includes(" ") || param.startsWith(":"))) {
      throw new Error(`a space cannot be sent in "${param}"`);
    }
    parts.push(last && (param === "" || param.includes(" ") || param.startsWith(":")) ? `:${param}` : param);
  });
  return parts.join(" ");
}

// -- what the server supports (RPL_ISUPPORT, 005) -------------------------------------------

export function defaultSupport() {
  return {
    casemapping: "rfc1459",
    chantypes: "#&",
    prefixModes: "ov",
    prefixMarks: "@+",
    // CHANMODES: A (lists, b), B (always a parameter, k), C (a parameter when set, l), D (flags).
    chanmodes: ["b", "k", "l", "imnpst"],
    network: "",
  };
}

// Read one 005 message's tokens into `support` (a copy is returned).
export function readSupport(support, tokens) {
  const next = { ...support, chanmodes: [...support.chanmodes] };
  for (const token of tokens) {
    const eq = token.indexOf("=");
    const key = (eq < 0 ? token : token.slice(0, eq)).toUpperCase();
    const value = eq < 0 ? "" : token.slice(eq + 1);
    if (key === "CASEMAPPING" && value) next.casemapping = value.toLowerCase();
    else if (key === "CHANTYPES") next.chantypes = value;
    else if (key === "NETWORK") next.network = value;
    else if (key === "CHANMODES") next.chanmodes = [...value.split(","), "", "", "", ""].slice(0, 4);
    else if (key === "PREFIX") {
      const m = /^\(([^)]*)\)(.*)$/u.exec(value);
      if (m && [...m[1]].length === [...m[2]].length) [next.prefixModes, next.prefixMarks] = [m[1], m[2]];
    }
  }
  return next;
}

// The key a nick or a room is unique under, by the server's CASEMAPPING.
export function nameKey(name, support) {
  if (support.casemapping === "ascii") return name.replace(/[A-Z]+/g, (s) => s.toLowerCase());
  if (support.casemapping.startsWith("rfc1459")) {
    const lower = name.replace(/[A-Z]+/g, (s) => s.toLowerCase());
    return support.casemapping === "rfc1459-strict"
      ? lower.replace(/[[\]\\]/g, (c) => "{}|"["[]\\".indexOf(c)])
      : lower.replace(/[[\]\\~]/g, (c) => "{}|^"["[]\\~".indexOf(c)]);
  }
  return casefold(name.normalize("NFKC")).normalize("NFC"); // rfc8265, utf8 and the rest
}

export const isChannel = (name, support) => name !== "" && support.chantypes.includes(name[0]);

// A name in a NAMES reply: its status marks (all of them with multi-prefix)
// and the nick (userhost-in-names' "nick!user@host" gives the nick).
export function readName(name, support) {
  let i = 0;
  const modes = [];
  const marks = [...support.prefixMarks];
  const chars = [...name];
  while (i < chars.length && marks.includes(chars[i])) {
    modes.push(support.prefixModes[marks.indexOf(chars[i])]);
    i += 1;
  }
  return { nick: sourceNick(chars.slice(i).join("")), modes };
}

// The changes of a MODE message on a channel: [{set, mode, arg}], with each
// mode's parameter taken by its CHANMODES class (or PREFIX: always one).
export function readModes(params, support) {
  const [modeString = "", ...args] = params;
  const [lists, always, whenSet] = support.chanmodes;
  const changes = [];
  let set = true;
  for (const mode of modeString) {
    if (mode === "+" || mode === "-") {
      set = mode === "+";
      continue;
    }
    const takes =
      support.prefixModes.includes(mode) || lists.includes(mode) || always.includes(mode) || (set && whenSet.includes(mode));
    changes.push({ set, mode, arg: takes ? (args.shift() ?? null) : null });
  }
  return changes;
}

// -- what the user types ----------------------------------------------------------------------

export const HELP = [
  "/join #room [key]      join a room (or several: #a,#b)",
  "/part [#room] [reason] leave this room (or that one); /close too",
  "/msg nick text         a private message; /query nick opens the conversation",
  "/me text               an action",
  "/notice target text    a notice",
  "/topic [text]          show or set this room's topic",
  "/nick name             change your nick",
  "/kick nick [reason]    operators: put someone out of this room",
  "/ban nick|mask         operators: ban (nick!*@* for a nick); /unban mask",
  "/op /deop /voice /devoice nick   operators: give or take @ or +",
  "/mode [+-modes] [args] show or change this room's modes",
  "/invite nick [#room]   invite someone",
  "/list                  the public rooms; /names /who /whois nick",
  "/away [text]           mark yourself away; /back",
  "/quote LINE            send a raw IRC line",
  "/quit [reason]         leave the chat",
  "//text                 say text that starts with /",
];

// What the page does for one typed line: {send: [messages], open?, close?,
// quit?, help?, list?} or {error}.  `here` is the room or conversation the
// line was typed in ({name, kind: "channel"|"query"|"server"}).
export function command(text, here, support) {
  if (!text.startsWith("/") || text.startsWith("//")) {
    return say(here, text.startsWith("//") ? text.slice(1) : text);
  }
  const space = text.search(/\s/);
  const name = (space < 0 ? text.slice(1) : text.slice(1, space)).toLowerCase();
  const rest = space < 0 ? "" : text.slice(space).trim();
  const args = rest ? rest.split(/\s+/) : [];
  const channel = here.kind === "channel" ? here.name : null;
  const room = (arg) => (arg && isChannel(arg, support) ? arg : null);
  const inRoom = (build) => (channel ? build(channel) : { error: `/${name} works in a room` });
  const needs = (n, usage) => (args.length < n ? { error: `usage: ${usage}` } : null);
  const tail = (n) => rest.split(/\s+/).slice(n).join(" "); // what follows the first n words
  try {
    switch (name) {
      case "me":
        if (here.kind === "server") return { error: "/me works in a room or a conversation" };
        return { send: [format("PRIVMSG", [here.name, `\u0001ACTION ${rest}\u0001`])] };
      case "j":
      case "join": {
        if (args.length < 1) return { error: "usage: /join #room [key]" };
        const rooms = args[0].split(",").map((r) => (isChannel(r, support) ? r : `${support.chantypes[0] || "#"}${r}`));
        return { send: [format("JOIN", [rooms.join(","), ...args.slice(1, 2)])], open: rooms[0] };
      }
      case "part":
      case "leave":
      case "close": {
        const target = room(args[0]) ?? channel;
        const reason = room(args[0]) ? tail(1) : rest;
        if (target) return { send: [format("PART", reason ? [target, reason] : [target])], close: target };
        if (here.kind === "query") return { send: [], close: here.name };
        return { error: "usage: /part #room [reason]" };
      }
      case "msg":
      case "query": {
        const err = name === "msg" ? needs(2, "/msg nick text") : needs(1, "/query nick [text]");
        if (err) return err;
        const body = tail(1);
        return { send: body ? [format("PRIVMSG", [args[0], body])] : [], open: args[0] };
      }
      case "notice":
        return needs(2, "/notice target text") ?? { send: [format("NOTICE", [args[0], tail(1)])] };
      case "topic":
        if (room(args[0])) return { send: [format("TOPIC", args.length > 1 ? [args[0], tail(1)] : [args[0]])] };
        return inRoom((c) => ({ send: [format("TOPIC", rest ? [c, rest] : [c])] }));
      case "nick":
        return needs(1, "/nick name") ?? { send: [format("NICK", [args[0]])] };
      case "kick":
        return needs(1, "/kick nick [reason]") ?? inRoom((c) => ({ send: [format("KICK", tail(1) ? [c, args[0], tail(1)] : [c, args[0]])] }));
      case "ban":
      case "unban": {
        if (args.length < 1) return { error: `usage: /${name} nick|mask` };
        const mask = /[!@*]/.test(args[0]) ? args[0] : `${args[0]}!*@*`;
        return inRoom((c) => ({ send: [format("MODE", [c, name === "ban" ? "+b" : "-b", mask])] }));
      }
      case "op":
      case "deop":
      case "voice":
      case "devoice": {
        if (args.length < 1) return { error: `usage: /${name} nick` };
        const sign = name.startsWith("de") ? "-" : "+";
        const mode = name.endsWith("op") ? "o" : "v";
        return inRoom((c) => ({ send: [format("MODE", [c, sign + mode.repeat(args.length), ...args])] }));
      }
      case "mode":
        if (room(args[0]) || (args[0] && !/^[+-]/.test(args[0]))) return { send: [format("MODE", args)] };
        return inRoom((c) => ({ send: [format("MODE", [c, ...args])] }));
      case "invite":
        if (args.length < 1) return { error: "usage: /invite nick [#room]" };
        if (room(args[1])) return { send: [format("INVITE", [args[0], args[1]])] };
        return inRoom((c) => ({ send: [format("INVITE", [args[0], c])] }));
      case "away":
        return { send: [format("AWAY", rest ? [rest] : [])] };
      case "back":
        return { send: [format("AWAY", [])] };
      case "list":
        return { send: [format("LIST", args.slice(0, 1))], list: true };
      case "names":
      case "who":
        if (args.length) return { send: [format(name.toUpperCase(), args.slice(0, 1))] };
        return inRoom((c) => ({ send: [format(name.toUpperCase(), [c])] }));
      case "whois":
        return needs(1, "/whois nick") ?? { send: [format("WHOIS", [args[0]])] };
      case "quit":
        return { send: [format("QUIT", [rest || "leaving"])], quit: true };
      case "quote":
      case "raw":
        if (!rest || /[\r\n\0]/.test(rest)) return { error: "usage: /quote LINE" };
        return { send: [rest] };
      case "help":
        return { send: [], help: true };
      default: // /version, /motd, /time...: sent as they are, the server answers or says it does not know them
        return { send: [format(name.toUpperCase(), args.length > 1 ? [...args.slice(0, -1), args.at(-1)] : args)] };
    }
  } catch (err) {
    return { error: err.message };
  }
}

function say(here, text) {
  if (here.kind === "server") return { error: "this is the server's window: /join #room, or /msg nick text" };
  try {
    return { send: [format("PRIVMSG", [here.name, text])] };
  } catch (err) {
    return { error: err.message };
  }
}

// A message's size against its limit: for PRIVMSG and NOTICE the text's
// bytes against what is left of the 510-byte body (and the server's own line
// limit, which the page is told), otherwise the whole message's.
export function measure(message, maxTextBytes) {
  const msg = parse(message);
  const total = utf8Bytes(message);
  if (msg === null || (msg.command !== "PRIVMSG" && msg.command !== "NOTICE") || msg.params.length < 2) {
    return { bytes: total, limit: MAX_BODY_BYTES };
  }
  const raw = msg.params[1];
  const action = /^\u0001ACTION (.*)\u0001$/su.exec(raw);
  const text = action ? action[1] : raw;
  const room = MAX_BODY_BYTES - (total - utf8Bytes(text));
  return { bytes: utf8Bytes(text), limit: maxTextBytes === null ? room : Math.min(room, maxTextBytes) };
}
