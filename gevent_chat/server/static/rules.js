// Rules ported from the terminal client, so that a nick looks the same in
// both: render.py's nick colours (CRC-32 of the case-folded nick over the
// same palette) and reconnect.py's backoff (0.5 s doubling, capped at 30 s,
// equal jitter) and alternate nicks.  PURE: no DOM, no clock, no socket.

const PALETTE = [31, 32, 33, 34, 35, 36, 91, 92, 93, 94, 95, 96];
const BASE_DELAY = 0.5;
const MAX_DELAY = 30.0;
export const MAX_NICK_CHARS = 32;

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

export function casefold(text) {
  return text.replace(/[^\u0131]+/gu, fold);
}

const encoder = new TextEncoder();

// The SGR colour code of a nick: render.nick_colour.
export function nickColour(nick) {
  return PALETTE[crc32(encoder.encode(casefold(nick))) % PALETTE.length];
}

// reconnect.backoff_delay: the wait before retry number `attempt` (from 0), `rand` in [0, 1).
export function backoffDelay(attempt, rand) {
  const nominal = Math.min(MAX_DELAY, BASE_DELAY * 2 ** Math.min(attempt, 32));
  return nominal / 2 + (rand * nominal) / 2;
}

// reconnect.alternate_nick: nick, nick_, nick__, nick_3, ... within the length limit.
export function alternateNick(nick, attempt) {
  if (attempt === 0) return nick;
  const suffix = attempt < 3 ? "_".repeat(attempt) : `_${attempt}`;
  return [...nick].slice(0, MAX_NICK_CHARS - suffix.length).join("") + suffix;
}

// Control and escape characters never reach the page, even from a server that keeps them.
export function sanitise(text) {
  return text.replace(/\t/g, " ").replace(/[\u0000-\u001f\u007f-\u009f]/g, "");
}

export const utf8Bytes = (text) => encoder.encode(text).length;
