"""The page's IRC codec and chat model (irc.js, model.js), run in Chromium with no server.

Both are pure JavaScript modules, exposed on ``window.geventChat``; these
tests call them through ``page.evaluate``.  The codec is checked against
irctokens, the parser the server uses, over a seeded corpus of messages
with awkward tags and parameters; the model by feeding it what a server
says and reading back rooms, members, modes and unread counts.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from irctokens.line import Line, tokenise

from tests.web_chat import Servers, running_servers, url

if TYPE_CHECKING:  # imported at run time as the plugin below, not before it
    from tests.browser import BrowserPage

pytest_plugins = ["tests.browser"]


@pytest.fixture
def servers() -> Iterator[Servers]:
    yield from running_servers()


@pytest.fixture
def page(browser_page: BrowserPage, servers: Servers) -> Any:
    """The page, loaded and idle (nobody logged in): only its modules are used."""
    loaded = browser_page.page
    loaded.goto(url(servers.start()))
    loaded.wait_for_function("() => window.geventChat !== undefined")
    return loaded


# -- the codec ---------------------------------------------------------------------------------

TAG_CHARS = ["a", "Z", "0", " ", ";", "\\", "\r", "\n", "=", "é", "😀", ":", "s"]
WORD_CHARS = ["a", "#", "é", "!", "@", ".", "-", "[", "]", "😀", "1", ":"]
TEXT_CHARS = [*WORD_CHARS, " ", ":", "\x01", "\t"]


def _text(rand: random.Random, chars: list[str], low: int, high: int) -> str:
    return "".join(rand.choices(chars, k=rand.randint(low, high)))


def _message(rand: random.Random) -> Line:
    tags = {f"k{i}": _text(rand, TAG_CHARS, 0, 8) for i in range(rand.randint(0, 3))}
    if rand.random() < 0.3:
        tags["+example.com/x"] = _text(rand, TAG_CHARS, 1, 4)
    source = rand.choice([None, "irc.test", "alice!a@h.example", "é!~u@2001:db8::1"])
    command = rand.choice(["PRIVMSG", "notice", "001", "353", "JOIN", "MODE"])
    params = [_text(rand, WORD_CHARS, 1, 6).lstrip(":") or "x" for _ in range(rand.randint(0, 3))]
    if rand.random() < 0.8:
        params.append(_text(rand, TEXT_CHARS, 0, 12))
    return Line(tags or None, source, command, params)


def test_parse_agrees_with_irctokens(page: Any) -> None:
    rand = random.Random(1459)
    lines = [_message(rand).format() for _ in range(1500)]
    got = page.evaluate(
        """ls => ls.map(l => {
             const m = window.geventChat.irc.parse(l);
             return m && [Object.assign({}, m.tags), m.source, m.command, m.params];
           })""",
        lines,
    )
    for line, parsed in zip(lines, got, strict=True):
        want = tokenise(line)
        assert parsed == [want.tags or {}, want.source, want.command, want.params], line


def test_format_is_read_back_by_irctokens(page: Any) -> None:
    rand = random.Random(2812)
    cases = []
    for _ in range(500):
        msg = _message(rand)
        tags = {k: v for k, v in (msg.tags or {}).items()}
        cases.append([msg.command, [p.replace("\r", "").replace("\n", "") for p in msg.params], tags])
    got = page.evaluate("cs => cs.map(([c, p, t]) => window.geventChat.irc.format(c, p, t))", cases)
    for (command, params, tags), line in zip(cases, got, strict=True):
        back = tokenise(line)
        assert (back.command, back.params, back.tags or {}) == (command.upper(), params, tags), line


def test_tag_values_are_unescaped_as_ircv3_says(page: Any) -> None:
    values = {
        r"a\sb": "a b",
        r"a\:b": "a;b",
        "a\\\\b": "a\\b",
        r"a\r\nb": "a\r\nb",
        r"a\bc": "abc",  # an unknown escape is the character itself
        "ab\\": "ab",  # a lone trailing backslash is dropped
        r"\\s": "\\s",
        "": "",
    }
    got = page.evaluate("vs => vs.map(v => window.geventChat.irc.unescapeTag(v))", list(values))
    assert got == list(values.values())
    got = page.evaluate("vs => vs.map(v => window.geventChat.irc.escapeTag(v))", list(values.values())[:4])
    assert got == list(values)[:4]


def test_format_refuses_what_would_change_the_message(page: Any) -> None:
    script = """cases => cases.map(([c, p]) => {
      try { return window.geventChat.irc.format(c, p); } catch (e) { return "refused: " + e.message; }
    })"""
    got = page.evaluate(
        script,
        [
            ["PRIVMSG", ["#a", "one\r\nQUIT :gotcha"]],
            ["PRIVMSG", ["#a b", "x"]],
            ["MODE", [":x", "+o"]],
            ["PRIVMSG", ["#a", ":)"]],
            ["PRIVMSG", ["#a", ""]],
            ["QUIT :x", []],
        ],
    )
    assert got == [
        "refused: a line break cannot be sent",
        'refused: a space cannot be sent in "#a b"',
        'refused: a space cannot be sent in ":x"',
        "PRIVMSG #a ::)",
        "PRIVMSG #a :",
        "refused: not a command: QUIT :x",
    ]


# -- typed commands ----------------------------------------------------------------------------

COMMANDS = [
    ("hello all", "channel", ["PRIVMSG #dev :hello all"]),
    ("//etc/hosts is here", "channel", ["PRIVMSG #dev :/etc/hosts is here"]),
    ("/me waves", "channel", ["PRIVMSG #dev :\x01ACTION waves\x01"]),
    ("/join ops", "channel", ["JOIN #ops"]),
    ("/join #a,b key", "channel", ["JOIN #a,#b key"]),
    ("/part", "channel", ["PART #dev"]),
    ("/part #ops bye now", "channel", ["PART #ops :bye now"]),
    ("/part see you", "channel", ["PART #dev :see you"]),
    ("/topic new topic here", "channel", ["TOPIC #dev :new topic here"]),
    ("/topic", "channel", ["TOPIC #dev"]),
    ("/kick bob spamming links", "channel", ["KICK #dev bob :spamming links"]),
    ("/kick bob", "channel", ["KICK #dev bob"]),
    ("/ban bob", "channel", ["MODE #dev +b bob!*@*"]),
    ("/ban *!*@bad.example", "channel", ["MODE #dev +b *!*@bad.example"]),
    ("/unban bob!*@*", "channel", ["MODE #dev -b bob!*@*"]),
    ("/op bob carol", "channel", ["MODE #dev +oo bob carol"]),
    ("/devoice bob", "channel", ["MODE #dev -v bob"]),
    ("/mode +mi", "channel", ["MODE #dev +mi"]),
    ("/mode", "channel", ["MODE #dev"]),
    ("/mode #ops +t", "channel", ["MODE #ops +t"]),
    ("/msg bob hi there", "channel", ["PRIVMSG bob :hi there"]),
    ("/query bob", "channel", []),
    ("/nick alicia", "channel", ["NICK alicia"]),
    ("/invite bob", "channel", ["INVITE bob #dev"]),
    ("/away lunch", "channel", ["AWAY lunch"]),
    ("/back", "channel", ["AWAY"]),
    ("/quit", "channel", ["QUIT leaving"]),
    ("/quit gone fishing", "channel", ["QUIT :gone fishing"]),
    ("/whois bob", "query", ["WHOIS bob"]),
    ("in private", "query", ["PRIVMSG bob :in private"]),
    ("/version", "server", ["VERSION"]),
    ("/quote PRIVMSG #x :raw", "server", ["PRIVMSG #x :raw"]),
]


def test_typed_commands_become_irc_messages(page: Any) -> None:
    got = page.evaluate(
        """cases => cases.map(([text, kind]) => {
          const irc = window.geventChat.irc;
          const here = { name: kind === "query" ? "bob" : kind === "channel" ? "#dev" : "server", kind };
          return irc.command(text, here, irc.defaultSupport());
        })""",
        [[text, kind] for text, kind, _ in COMMANDS],
    )
    assert [r.get("send") for r in got] == [want for _, _, want in COMMANDS]


def test_commands_that_need_a_room_say_so(page: Any) -> None:
    got = page.evaluate(
        """cases => cases.map((text) => {
          const irc = window.geventChat.irc;
          return irc.command(text, { name: "server", kind: "server" }, irc.defaultSupport()).error;
        })""",
        ["hello", "/kick bob", "/me waves", "/msg bob", "/join"],
    )
    assert got == [
        "this is the server's window: /join #room, or /msg nick text",
        "/kick works in a room",
        "/me works in a room or a conversation",
        "usage: /msg nick text",
        "usage: /join #room [key]",
    ]


# -- the model ---------------------------------------------------------------------------------

# What a server says to alice as she registers, joins #dev and #ops, and others talk.
SCRIPT = [
    ":irc.test CAP * LS :batch echo-message message-tags multi-prefix server-time",
    ":irc.test CAP alice ACK :batch echo-message message-tags multi-prefix server-time",
    ":irc.test 001 alice :Welcome to the network alice",
    ":irc.test 005 alice CASEMAPPING=rfc8265 PREFIX=(ov)@+ CHANMODES=b,k,l,imnst :are supported",
    "@time=2026-12-07T09:00:00.000Z :alice!a@h JOIN #dev",
    ":irc.test BATCH +h1 chathistory #dev",
    "@batch=h1;time=2026-12-07T08:00:00.000Z :bob!b@h PRIVMSG #dev :said before, alice",
    ":irc.test BATCH -h1",
    ":irc.test 332 alice #dev :all about dev",
    ":irc.test 353 alice = #dev :@+bob alice +carol",
    ":irc.test 366 alice #dev :End of /NAMES list",
    ":irc.test 324 alice #dev +nt",
    ":alice!a@h JOIN #ops",
    ":irc.test 353 alice = #ops :@alice",
    ":irc.test 366 alice #ops :End of /NAMES list",
    "@time=2026-12-07T09:01:00.000Z :bob!b@h PRIVMSG #dev :plain line",
    ":carol!c@h PRIVMSG #dev :ALICE, look",
    ":bob!b@h PRIVMSG #dev :\x01ACTION nods\x01",
    ":bob!b@h MODE #dev +o-v+m alice bob",
    ":dave!d@h PRIVMSG alice :psst",
]

RUN = """([script, select]) => {
  const chat = new window.geventChat.Chat();
  const sent = [];
  chat.hello("alice", null);
  for (const line of script) sent.push(...chat.receive(line, 1000).send);
  if (select) chat.select(chat.key(select));
  const rooms = chat.ordered().map((r) => ({
    name: r.name, kind: r.kind, unread: r.unread, mention: r.mention, topic: r.topic, joined: r.joined,
    modes: [...r.modes.keys()].sort().join(""),
    members: chat.members(r.key).map((m) => chat.mark(m) + m.nick),
    lines: r.lines.map((e) => [e.kind, e.nick, e.text, e.history, new Date(e.time).toISOString()]),
  }));
  return { sent, rooms, active: chat.active, rejoin: chat.rejoin(), total: chat.unreadTotal() };
}"""


def run(page: Any, script: list[str], select: str | None = None) -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate(RUN, [script, select])
    return result


def test_model_negotiates_caps_and_answers_ping(page: Any) -> None:
    result = run(page, [*SCRIPT[:2], "PING :lag1"])
    # What was offered and is wanted (away-notify was not offered), then END on the ACK.
    assert result["sent"] == [
        "CAP REQ :batch echo-message message-tags multi-prefix server-time",
        "CAP END",
        "PONG lag1",
    ]


def test_model_keeps_rooms_members_marks_and_modes(page: Any) -> None:
    listed = run(page, SCRIPT)["rooms"]
    rooms = {r["name"]: r for r in listed}
    assert [(r["name"], r["kind"]) for r in listed] == [
        ("server", "server"),
        ("#dev", "channel"),
        ("#ops", "channel"),
        ("dave", "query"),
    ]
    dev = rooms["#dev"]
    assert dev["topic"] == "all about dev"
    assert dev["members"] == ["@alice", "@bob", "+carol"]  # operators first; -v took bob's +
    assert dev["modes"] == "mnt"  # asked for on joining (not shown as a line), then +m
    assert not [line for line in dev["lines"] if line[2].startswith("modes")]
    assert rooms["#ops"]["members"] == ["@alice"]


def test_model_asks_each_joined_rooms_modes(page: Any) -> None:
    assert [line for line in run(page, SCRIPT)["sent"] if line.startswith("MODE")] == [
        "MODE #dev",
        "MODE #ops",
    ]


def test_model_keeps_the_servers_times_and_marks_history(page: Any) -> None:
    dev = {r["name"]: r for r in run(page, SCRIPT)["rooms"]}["#dev"]
    said = {line[2]: line for line in dev["lines"]}
    assert said["said before, alice"] == [
        "chat",
        "bob",
        "said before, alice",
        True,
        "2026-12-07T08:00:00.000Z",
    ]
    assert said["plain line"] == ["chat", "bob", "plain line", False, "2026-12-07T09:01:00.000Z"]
    assert said["nods"][:2] == ["action", "bob"]
    assert said["bob sets mode +o-v+m alice bob"][0] == "event"


def test_model_counts_unreads_and_mentions_outside_the_room_on_show(page: Any) -> None:
    result = run(page, SCRIPT)
    rooms = {r["name"]: r for r in result["rooms"]}
    # Nothing was selected: the server's window is on show.  History and events are not unread.
    assert result["active"] == ""
    assert (rooms["#dev"]["unread"], rooms["#dev"]["mention"]) == (3, True)  # "ALICE, look" names her
    assert (rooms["dave"]["unread"], rooms["dave"]["mention"]) == (1, True)  # a private message
    assert (rooms["#ops"]["unread"], rooms["server"]["unread"]) == (0, 0)
    assert result["total"] == 4
    shown = run(page, SCRIPT, select="#dev")
    assert {r["name"]: r["unread"] for r in shown["rooms"]}["#dev"] == 0
    assert shown["total"] == 1


def test_model_rejoins_every_room_but_one_it_was_kicked_from(page: Any) -> None:
    assert run(page, SCRIPT)["rejoin"] == ["JOIN #dev,#ops"]
    kicked = run(page, [*SCRIPT, ":bob!b@h KICK #dev alice :behave"])
    dev = {r["name"]: r for r in kicked["rooms"]}["#dev"]
    assert (dev["joined"], dev["members"], dev["mention"]) == (False, [], True)
    assert dev["lines"][-1][2] == "you were kicked by bob (behave)"
    assert kicked["rejoin"] == ["JOIN #ops"]


def test_model_follows_nick_changes_parts_and_quits(page: Any) -> None:
    script = [
        *SCRIPT,
        ":carol!c@h NICK :caroline",
        ":bob!b@h PART #dev :later",
        ":dave!d@h QUIT :Quit: bye",
        ":alice!a@h NICK alicia",
        ":alicia!a@h PART #ops",
    ]
    rooms = {r["name"]: r for r in run(page, script)["rooms"]}
    assert rooms["#dev"]["members"] == ["@alicia", "+caroline"]
    assert "#ops" not in rooms  # parted: gone from the list
    texts = [line[2] for line in rooms["#dev"]["lines"][-3:]]
    assert texts == ["carol is now known as caroline", "bob left (later)", "you are now known as alicia"]
    assert rooms["dave"]["lines"][-1][2] == "dave quit (Quit: bye)"


def test_model_reads_names_by_the_servers_prefixes(page: Any) -> None:
    got = page.evaluate(
        """names => {
          const irc = window.geventChat.irc;
          const support = irc.readSupport(irc.defaultSupport(), ["PREFIX=(qaohv)~&@%+"]);
          return names.map((n) => irc.readName(n, support));
        }""",
        ["~&@bob", "%carol!c@host", "+dave", "erin", "@"],
    )
    assert got == [
        {"nick": "bob", "modes": ["q", "a", "o"]},
        {"nick": "carol", "modes": ["h"]},
        {"nick": "dave", "modes": ["v"]},
        {"nick": "erin", "modes": []},
        {"nick": "", "modes": ["o"]},
    ]


def test_model_asks_who_is_left_after_its_own_ban_only(page: Any) -> None:
    own = run(page, [*SCRIPT, ":alice!a@h MODE #dev +b bob!*@*"])["sent"]
    other = run(page, [*SCRIPT, ":bob!b@h MODE #dev +b carol!*@*"])["sent"]
    unban = run(page, [*SCRIPT, ":alice!a@h MODE #dev -b bob!*@*"])["sent"]
    assert (own[-1], other[-1], unban[-1]) == ("NAMES #dev", "MODE #ops", "MODE #ops")


def test_model_shows_an_invitation_where_one_is_looking(page: Any) -> None:
    result = run(page, [*SCRIPT, ":bob!b@h INVITE alice #secret"])
    shown = {r["name"]: r for r in result["rooms"]}["server"]  # nothing selected: the server's window
    assert shown["lines"][-1][:3] == ["notice", "bob", "invites you to #secret: /join #secret"]
    assert (shown["unread"], shown["mention"]) == (0, False)  # on show, so read
