"""Fan-out benchmark: throughput, latency and memory of the chat server at its limit.

``python -m loadtest.fanout [--scenario NAME | all] [--json] [--duration S] [--repeat N]``

Steps: start ``python -m gevent_chat.server`` as a subprocess pinned to core 0
(the generator pins itself to the other cores), connect and register the
clients, run the scenario, stop the server (SIGTERM, wait, kill) and print one
row (or one JSON object) per run, plus a median row when ``--repeat`` > 1.

How deliveries are checked (the server never echoes a line to its sender):
- Every client reads everything.  Its reader counts complete lines in bulk
  (``data.count(b"\\n")``) and finds notice lines (``*** ...``) with
  ``bytes.find``; chat lines = lines - notices.  All clients register before
  anyone sends and nobody leaves, so each receiver must get exactly the sum of
  what the others sent: a shortfall is counted as ``lost``, an excess as
  ``dup``.  That covers every (sender, receiver) pair.
- Each receiver also *tracks* some senders (``bytes.find`` of
  ``b"\\n<nick>: "``): it parses those lines for the sequence number (gaps,
  reorders, duplicates: ``ooo`` and ``seq_gaps``) and the send time carried in
  the line (latency, ``time.monotonic_ns``, one clock for the whole machine).
- Closed loop (``fanout-*``): the witness of sender ``i`` is client ``i+1``,
  which tracks it; each line the witness sees frees one of the sender's 8
  in-flight slots, and the witness's greenlet sends the replacement at once.
- Open loop (``latency``, ``slow-consumer``): each sender has a schedule
  (a fixed rate, phases spread); a line carries its *scheduled* time, and
  overdue lines are sent at once, so a stall shows up as latency instead of
  as fewer samples (no coordinated omission).  Every receiver tracks every
  sender, so every delivery is timed.

Line format (the server adds ``nick: ``): ``<seq> <send-time-ns> <padding>``,
about 48 bytes in all, like a chat line.

Timers: libev's default epoll backend sleeps in whole milliseconds, so an
open-loop sender wakes about 0.5 ms late at the median (1.1 ms at p99) and,
since latency counts from the scheduled time, that lateness would be measured
as the server's.  The open-loop scenarios therefore run the generator on
libev's ``select`` backend, which sleeps to the microsecond (0.1 ms late at the
median); ``select`` only handles descriptors below 1024, which they stay under.
With ``--scenario all`` each scenario runs in a process of its own, so each
gets its backend.

Arrival times: in the open-loop scenarios a line's arrival is the kernel's
receive timestamp (``SO_TIMESTAMPNS``, read with ``recvmsg``): on loopback
that is when the server's ``send`` put it in the receiving socket.  With 100
clients, each line wakes 99 receiving greenlets in this one process; timing
them with the clock as each gets its turn would add this process's own
queueing, up to a millisecond, to every figure.  The send side stays as it
is: latency counts from the scheduled time.

Load stays on 127.0.0.1 and every run stops by itself.  The generator is one
gevent process: check its CPU % in the output; near 100 % it, not the server,
is the limit.
"""
