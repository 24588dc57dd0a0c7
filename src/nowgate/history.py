"""What this node sent, kept for a while, so a client that reconnects gets what it missed.

Design (docs/protocol.md, "Missed-message recovery", is the wire side):

- **Positions, not bookkeeping.** After an abrupt cut the server cannot know which frames
  reached the client (they may sit in a dead socket's buffer), so it keeps no "sent" state
  per client. Every recorded event gets the next number of one sequence per node *epoch*
  (a random id drawn at start-up); a client that opted in sees that number on each recorded
  message (`"seq"`), and on reconnect presents the epoch and the last number it processed.
  What follows that number in the history, filtered for it, is what it missed.
- **One number per event, the same for every receiver.** A broadcast is framed once and the
  same bytes go to every receiver (`nowgate.frames`), so the number cannot be per client: a
  client sees gaps for events that were not addressed to it. Opted-in clients get a second
  framing of the same event (the text with `"seq"` spliced in, framed once, lazily); others
  get today's bytes.
- **What is recorded:** broadcasts (everyone, a group, `without` one client), messages to one
  client, variable changes in every scope, and membership changes (joins and leaves, never
  sent: they tell the replay which groups the client was in at each event, so it never gets
  a group's message from before it joined or after it left). Not replies, not server->client
  calls awaiting an answer (a call in flight fails as "disconnected" on both sides), not
  `now.token` and the per-client `now.set`/`now.del` of a join or leave (the token the
  client presents decides its groups on resume).
- **Bounded** by count, total text bytes and age (`history_size`, `history_max_bytes`,
  `history_seconds`): the oldest entries go first, and the sequence number of the newest one
  evicted is the floor: a position below it cannot be replayed ("expired"). Memory is at
  most `history_max_bytes` of message text plus about 200 bytes per entry.
- **Exactly once, in order, no interleaving.** `record()` runs in the same synchronous step
  as the delivery it numbers; `replay()` runs in the same synchronous step as the
  registration of the resumed client and its welcome. So every event is either in the
  replay (number <= the welcome's) or delivered live after it (number > the welcome's).
- **Cluster** (`NOWGATE_REDIS_URL`): every node keeps its own history of everything it
  delivered or recorded (broadcasts from other nodes included) and copies it to a Redis
  stream (`nowgate.shared_history`). A broadcast carries its origin's name for it (node epoch
  and number) through the backplane, so every node knows which events are the same. A
  client that resumes on another node presents its old node's epoch: the new node reads that
  node's stream, waits (up to a second) until it has itself received every broadcast the
  stream holds after the position (so none of them also arrives live), then replays what
  the old node recorded after the position (numbered in the old node's sequence), then the
  broadcasts it delivered that the old node never recorded (it died, or lags), unnumbered:
  per origin, those numbered past the last the old node knew (each publisher's events reach
  every node in order). What the old node recorded in its last moments before a crash is
  not in its stream yet: a position past the stream's end is "lost".
"""

from __future__ import annotations

import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass


def with_seq(text: str, seq: int) -> str:
    """The JSON object `text` with a `"seq"` member added (text is an encoded object)."""
    return f'{text[:-1]},"seq":{seq}}}'


class Entry:
    """One recorded event. `client`: to one client; else `group` (None: everyone).

    `origin`/`origin_seq` name the event across the cluster (the node that published it, and
    its number there); `shared` says it went through the backplane, so every node has it.
    """

    __slots__ = (
        "after", "at", "before", "client", "group", "origin", "origin_seq", "seq", "shared",
        "text", "without",
    )

    def __init__(
        self,
        seq: int,
        at: float,
        text: str | None,
        group: str | None = None,
        client: str | None = None,
        without: str | None = None,
        before: frozenset[str] = frozenset(),
        after: frozenset[str] = frozenset(),
        origin: str = "",
        origin_seq: int = 0,
        shared: bool = False,
    ) -> None:
        self.seq = seq
        self.at = at
        self.text = text  # None: a membership change (`client` changed groups; never sent)
        self.group = group
        self.client = client
        self.without = without
        # For a membership change: the client's groups before and after it.
        self.before = before
        self.after = after
        self.origin = origin
        self.origin_seq = origin_seq
        self.shared = shared


@dataclass(frozen=True, slots=True)
class Replay:
    """The answer to a resume: the missed messages (already carrying `"seq"`), or why not."""

    recovered: bool
    messages: list[str]
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Foreign:
    """Another node's history, as read from the shared store: entries oldest first."""

    entries: list[Entry]
    floor: int  # every entry numbered above the floor is in `entries`

    def published_after(self, seq: int) -> dict[str, int]:
        """Per origin, the highest number of a shared event after `seq`: what this node must
        have received before it can tell replayed events from live ones."""
        marks: dict[str, int] = {}
        for entry in self.entries:
            if entry.seq > seq and entry.shared:
                marks[entry.origin] = max(marks.get(entry.origin, 0), entry.origin_seq)
        return marks


class MemoryHistory:
    def __init__(
        self,
        size: int,
        max_bytes: int,
        seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.epoch = "e-" + secrets.token_hex(8)
        self._size = size
        self._max_bytes = max_bytes
        self._seconds = seconds
        self._clock = clock
        self._entries: deque[Entry] = deque()
        self._bytes = 0
        self._seq = 0
        self._floor = 0  # entries numbered above the floor are all still here
        self._latest: dict[str, int] = {}  # per origin, the highest shared event seen
        # Called with each new entry (the cluster's shared copy, `SharedHistory.push`).
        self.mirror: Callable[[Entry], None] | None = None

    @property
    def last_seq(self) -> int:
        return self._seq

    def record(
        self, text: str, group: str | None = None, client: str | None = None,
        without: str | None = None, origin: tuple[str, int] | None = None, shared: bool = False,
    ) -> int:
        """Number an event about to be delivered; returns its sequence number.

        `origin`: another node's name for it (a broadcast that came through the backplane);
        `shared`: it is published to (or came from) the other nodes.
        """
        self._seq += 1
        if self._size:
            name, number = origin if origin is not None else (self.epoch, self._seq)
            if shared:
                self._latest[name] = max(self._latest.get(name, 0), number)
            self._append(Entry(self._seq, self._clock(), text, group, client, without,
                               origin=name, origin_seq=number, shared=shared))
        return self._seq

    def record_membership(self, client: str, before: Iterable[str], after: Iterable[str]) -> None:
        """`client` joined or left a group: its groups `before` and `after` the change."""
        if self._size:
            self._seq += 1
            self._append(Entry(self._seq, self._clock(), None, client=client,
                               before=frozenset(before), after=frozenset(after),
                               origin=self.epoch, origin_seq=self._seq))

    def _append(self, entry: Entry) -> None:
        self._entries.append(entry)
        self._bytes += len(entry.text) if entry.text is not None else 0
        self._evict(entry.at)
        if self.mirror is not None:
            self.mirror(entry)

    def _evict(self, now: float) -> None:
        entries, oldest = self._entries, now - self._seconds
        while entries and (
            len(entries) > self._size or self._bytes > self._max_bytes or entries[0].at < oldest
        ):
            entry = entries.popleft()
            self._bytes -= len(entry.text) if entry.text is not None else 0
            self._floor = entry.seq

    def has_received(self, marks: dict[str, int]) -> bool:
        """Has this node recorded every shared event up to these numbers, per origin?"""
        return all(self._latest.get(origin, 0) >= number for origin, number in marks.items())

    def replay(
        self, epoch: str, seq: int, client: str, groups: frozenset[str], limit: int
    ) -> Replay:
        """What `client` (now in `groups`) missed after `seq`, at most `limit` messages."""
        if not self._size:
            return Replay(False, [], "disabled")
        if epoch != self.epoch:
            return Replay(False, [], "unknown_epoch")  # another node, or before a restart
        if seq > self._seq:
            return Replay(False, [], "unknown_position")
        self._evict(self._clock())
        if seq < self._floor:
            return Replay(False, [], "expired")
        messages, _ = _select(self._entries, seq, client, groups, numbered=True)
        if len(messages) > limit:
            return Replay(False, [], "too_many")
        return Replay(True, messages)

    def replay_from(
        self, foreign: Foreign, seq: int, client: str, groups: frozenset[str], limit: int
    ) -> Replay:
        """What `client` missed after `seq` of another node (`foreign`), resuming here.

        First what that node recorded after `seq` (numbered in its sequence, which is the
        client's position until the replay is over), then what this node delivered that
        the other never recorded (it died, or lags): those carry no number.
        """
        if not self._size:
            return Replay(False, [], "disabled")
        if not foreign.entries:
            return Replay(False, [], "unknown_epoch")
        if seq > foreign.entries[-1].seq:
            # Its node went down before it stored what the client saw last: what followed
            # cannot be told from what the client has.
            return Replay(False, [], "lost")
        if seq < foreign.floor:
            return Replay(False, [], "expired")
        known: dict[str, int] = {}
        for entry in foreign.entries:
            if entry.shared:
                known[entry.origin] = max(known.get(entry.origin, 0), entry.origin_seq)
        messages, member_of = _select(foreign.entries, seq, client, groups, numbered=True)
        # Then the shared events it never recorded: per origin (each publisher's events
        # reach every node in order), those numbered past what it knew. This node must
        # still hold, for each origin, the point where the other's knowledge ends.
        self._evict(self._clock())
        if self._floor and any(
            not any(e.origin == origin and e.origin_seq <= number for e in self._entries)
            for origin, number in known.items()
        ):
            return Replay(False, [], "expired")
        unseen = [e for e in self._entries
                  if e.shared and e.origin_seq > known.get(e.origin, 0)]
        extra, _ = _select(unseen, 0, client, member_of, numbered=False)
        messages += extra
        if len(messages) > limit:
            return Replay(False, [], "too_many")
        return Replay(True, messages)


def _select(
    entries: Iterable[Entry], seq: int, client: str, groups: frozenset[str], numbered: bool
) -> tuple[list[str], frozenset[str]]:
    """The messages for `client` after `seq`, and the groups it is in after them.

    The groups the client was in at `seq`: those before its first membership change since
    then; with none, the groups its token restores (any earlier change sent it a now.token
    before the message numbered `seq`).
    """
    missed = [e for e in entries if e.seq > seq and _concerns(e, client)]
    member_of = next((e.before for e in missed if e.text is None), None)
    current = groups if member_of is None else member_of
    messages = []
    for entry in missed:
        if entry.text is None:
            current = entry.after
        elif entry.client is not None or entry.group is None or entry.group in current:
            messages.append(with_seq(entry.text, entry.seq) if numbered else entry.text)
    return messages, current


def _concerns(entry: Entry, client: str) -> bool:
    """Could this entry be for `client` (group membership is checked during the replay)?"""
    if entry.client is not None:
        return entry.client == client
    return entry.without != client
