"""IRC as a second protocol onto the same chat (PURE: no I/O, no clock, no gevent).

``message`` parses and formats lines, ``numerics`` names the replies,
``caps`` negotiates IRCv3 capabilities, ``isupport`` says what the server
supports, ``render`` turns chat events into IRC lines for one set of
capabilities, and ``session`` is one IRC client's state machine.  The
transport is ``gevent_chat.server.irc``.
"""
