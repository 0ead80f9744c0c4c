"""Cached definitions vouched for by libvirt events: every path that must lead to a full read (libvirt faked)."""

from __future__ import annotations

import itertools
import threading

import libvirt
import pytest

from tests.actioner_fixtures import actioner_config
from tests.unit.actioner.test_domain_reader import Conn, Dom, xml
from virtbalance.actioner.domain_events import WATCHED_EVENTS, DomainWatch
from virtbalance.actioner.domain_reader import DefinitionCache, DomainReader
from virtbalance.actioner.event_loop import HEARTBEAT_SECONDS, STALE_AFTER_SECONDS, EventLoop
from virtbalance.actioner.libvirt_hosts import HostPool
from virtbalance.domain_metadata import Placement


class Loop:
    """An event loop whose health the test decides."""

    def __init__(self, registered=True, healthy=True):
        self.registered = registered
        self.is_healthy = healthy
        self.gaps = 0

    def healthy(self):
        return self.is_healthy


class EventDom(Dom):
    _ids = itertools.count(1)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.id = next(self._ids)

    def ID(self):
        return self.id


class EventConn(Conn):
    """A connection that keeps its event callbacks and can raise events and a close."""

    def __init__(self, doms, *, refuse=()):
        super().__init__(doms)
        self.refuse = set(refuse)  # event ids whose registration fails
        self.callbacks: dict[int, tuple[int, object, object]] = {}
        self.close_callback = None
        self.alive = True
        self.closed = False

    def isAlive(self):
        return int(self.alive)

    def domainEventRegisterAny(self, dom, event, cb, opaque):
        if event in self.refuse:
            raise libvirt.libvirtError("event not supported")
        callback = len(self.callbacks) + 1
        self.callbacks[callback] = (event, cb, opaque)
        return callback

    def domainEventDeregisterAny(self, callback):
        del self.callbacks[callback]

    def registerCloseCallback(self, cb, opaque):
        self.close_callback = (cb, opaque)

    def unregisterCloseCallback(self):
        self.close_callback = None

    def setKeepAlive(self, interval, count):
        raise libvirt.libvirtError("this function is not supported by the connection driver")

    def close(self):
        self.closed = True

    def fire(self, event, dom, *details):
        (fired,) = [(cb, opaque) for e, cb, opaque in self.callbacks.values() if e == event]
        cb, opaque = fired
        cb(self, dom, *details, opaque)

    def lose(self):
        self.alive = False
        cb, opaque = self.close_callback
        cb(self, libvirt.VIR_CONNECT_CLOSE_REASON_EOF, opaque)


class World:
    """One host behind a real HostPool and DomainReader; libvirt.open hands out fake connections."""

    def __init__(self, tmp_path, monkeypatch, *, loop=None, refuse=(), clock=None):
        self.doms = [
            EventDom("web1", xml("web1", "lan1")),
            EventDom("db1", xml("db1", "lan1", placement=Placement(group="db"))),
        ]
        self.refuse = refuse
        self.opened: list[EventConn] = []
        monkeypatch.setattr(libvirt, "open", self._open)
        self.loop = loop or Loop()
        self.watch = DomainWatch(self.loop)
        self.pool = HostPool(actioner_config(tmp_path), self.watch)
        cache = DefinitionCache() if clock is None else DefinitionCache(monotonic=clock)
        self.reader = DomainReader(self.pool, cache)

    def _open(self, uri):
        conn = EventConn(self.doms, refuse=self.refuse)
        self.opened.append(conn)
        return conn

    @property
    def conn(self) -> EventConn:
        return self.opened[-1]

    def read(self) -> dict[str, list[str]]:
        """Read hv1; the per-domain calls each domain got (XMLDesc when the cache did not vouch)."""
        for d in self.doms:
            d.calls.clear()
        self.facts = {f.name: f for f in self.reader.domains("hv1")}
        return {d.name(): d.calls for d in self.doms}


NONE_READ = {"web1": [], "db1": []}
ALL_READ = {"web1": ["XMLDesc"], "db1": ["XMLDesc"]}


@pytest.fixture
def world(tmp_path, monkeypatch):
    return World(tmp_path, monkeypatch)


def test_a_watched_host_is_read_once_and_then_vouched_for(world):
    assert world.read() == ALL_READ
    assert world.read() == NONE_READ
    assert world.read() == NONE_READ
    assert (world.reader.cache.parsed, world.reader.cache.unread) == (2, 4)
    assert sorted(e for e, _cb, _o in world.conn.callbacks.values()) == sorted(WATCHED_EVENTS)
    assert world.facts["db1"].placement == Placement(group="db")


@pytest.mark.parametrize("event", WATCHED_EVENTS)
def test_every_watched_event_makes_its_domain_read_again(world, event):
    world.read()
    web1 = world.doms[0]
    web1.xml = xml("web1", "lan1", "lan9", placement=Placement(pinned=True))
    world.conn.fire(event, web1, 0, 0)
    assert world.read() == {"web1": ["XMLDesc"], "db1": []}
    assert world.facts["web1"].placement.pinned is True
    assert world.facts["web1"].bridges == ("lan1", "lan9")
    assert world.read() == NONE_READ


def test_a_new_domain_id_is_read_again_even_without_an_event(world):
    world.read()
    world.doms[1].id = 99  # restarted, or migrated away and back, while an event went missing
    assert world.read() == {"web1": [], "db1": ["XMLDesc"]}


def test_an_unknown_uuid_is_read(world):
    world.read()
    world.doms.append(EventDom("new1", xml("new1", "lan3")))
    calls = world.read()
    assert calls["new1"] == ["XMLDesc"]
    assert (calls["web1"], calls["db1"]) == ([], [])


def test_a_reconnect_reads_the_host_in_full_and_releases_the_old_callbacks(world):
    world.read()
    old = world.conn
    old.alive = False  # the pool finds it dead and opens another
    assert world.read() == ALL_READ
    assert world.conn is not old
    assert (old.callbacks, old.close_callback, old.closed) == ({}, None, True)
    assert world.read() == NONE_READ


def test_a_closed_connection_is_not_vouched_for_until_it_reconnects(world):
    world.read()
    first = world.conn
    first.alive = True  # closed as the callback says, isAlive not yet updated: still no trust
    cb, opaque = first.close_callback
    cb(first, libvirt.VIR_CONNECT_CLOSE_REASON_KEEPALIVE, opaque)
    assert world.read() == ALL_READ
    assert world.read() == ALL_READ
    first.alive = False
    assert world.read() == ALL_READ  # the new connection's first read
    assert world.read() == NONE_READ
    # A late close of the old connection does not unwatch the new one.
    cb(first, libvirt.VIR_CONNECT_CLOSE_REASON_EOF, opaque)
    assert world.read() == NONE_READ


def test_a_failed_callback_registration_means_full_reads(tmp_path, monkeypatch):
    world = World(tmp_path, monkeypatch, refuse={libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED})
    assert world.read() == ALL_READ
    assert world.read() == ALL_READ


def test_an_unhealthy_loop_means_full_reads_until_it_is_healthy_again(world):
    world.read()
    world.loop.is_healthy = False
    assert world.read() == ALL_READ
    assert world.read() == ALL_READ
    world.loop.is_healthy = True
    world.loop.gaps += 1  # as the loop counts the stall when it turns again
    assert world.read() == ALL_READ
    assert world.read() == NONE_READ


def test_a_stall_of_the_loop_between_two_reads_means_a_full_read(world):
    world.read()
    world.loop.gaps += 1  # stalled and resumed while no snapshot was read
    assert world.read() == ALL_READ
    assert world.read() == NONE_READ


def test_a_connection_opened_before_the_loop_was_registered_is_never_vouched_for(
    tmp_path, monkeypatch
):
    world = World(tmp_path, monkeypatch, loop=Loop(registered=False))
    world.read()
    world.loop.registered = True  # registered later: this connection still delivers nothing
    assert world.read() == ALL_READ
    assert world.conn.callbacks == {}


def test_an_entry_older_than_the_maximum_age_is_read_again(tmp_path, monkeypatch):
    now = [1000.0]
    world = World(tmp_path, monkeypatch, clock=lambda: now[0])
    world.read()
    now[0] += 299.0
    assert world.read() == NONE_READ
    now[0] += 2.0
    assert world.read() == ALL_READ
    assert world.read() == NONE_READ


def test_an_event_during_the_xml_read_makes_the_next_read_fresh(world):
    world.read()
    db1 = world.doms[1]
    world.conn.fire(libvirt.VIR_DOMAIN_EVENT_ID_METADATA_CHANGE, db1, 0, "")
    read = db1.XMLDesc

    def changed_while_read(flags):
        text = read(flags)
        db1.xml = xml("db1", "lan1", placement=Placement(group="db", pinned=True))
        world.conn.fire(libvirt.VIR_DOMAIN_EVENT_ID_METADATA_CHANGE, db1, 0, "")
        return text

    db1.XMLDesc = changed_while_read
    world.read()
    assert world.facts["db1"].placement.pinned is False  # what was read
    db1.XMLDesc = read
    assert world.read() == {"web1": [], "db1": ["XMLDesc"]}
    assert world.facts["db1"].placement.pinned is True


def test_a_doubted_host_is_read_in_full_once(world):
    world.read()
    world.watch.doubt("hv1")
    assert world.read() == ALL_READ
    assert world.read() == NONE_READ


def test_dropping_the_connection_releases_its_callbacks(world):
    world.read()
    conn = world.conn
    world.pool.drop("hv1")
    assert (conn.callbacks, conn.close_callback, conn.closed) == ({}, None, True)
    assert world.read() == ALL_READ


class FakeLibvirtLoop:
    """libvirt's event functions: one iteration per ``turn``, and a death on request."""

    def __init__(self):
        self.timers = []
        self.turns = threading.Semaphore(0)
        self.die = False
        self.ended = threading.Event()

    def register(self):
        pass

    def add_timeout(self, ms, cb, opaque):
        self.timers.append((ms, cb))
        return 1

    def run_once(self):
        self.turns.acquire()
        if self.die:
            self.ended.set()
            raise RuntimeError("poll failed")
        return 0


def test_the_loop_is_healthy_while_it_ticks_counts_its_stalls_and_stays_dead(monkeypatch):
    fake = FakeLibvirtLoop()
    monkeypatch.setattr(libvirt, "virEventRegisterDefaultImpl", fake.register)
    monkeypatch.setattr(libvirt, "virEventAddTimeout", fake.add_timeout)
    monkeypatch.setattr(libvirt, "virEventRunDefaultImpl", fake.run_once)
    now = [100.0]
    loop = EventLoop(monotonic=lambda: now[0])
    assert not loop.registered and not loop.healthy()
    loop.start()
    loop.start()  # once per process
    ((ms, tick),) = fake.timers
    assert (ms, loop.registered, loop.healthy()) == (HEARTBEAT_SECONDS * 1000, True, True)
    now[0] += STALE_AFTER_SECONDS + 1
    assert not loop.healthy()  # no tick for too long: stuck
    tick(1, None)
    assert (loop.healthy(), loop.gaps) == (True, 1)
    now[0] += HEARTBEAT_SECONDS
    tick(1, None)
    assert loop.gaps == 1
    fake.die = True
    fake.turns.release()
    assert fake.ended.wait(5)
    loop._thread.join(5)
    tick(1, None)
    assert not loop.healthy()
    assert loop.error == "event loop died: poll failed"


def test_an_event_whose_domain_cannot_be_named_makes_the_host_read_in_full(world):
    world.read()

    class Nameless:
        def UUIDString(self):
            raise libvirt.libvirtError("domain gone")

    world.conn.fire(libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, Nameless(), 0, 0)
    assert world.read() == ALL_READ
    assert world.read() == NONE_READ


def test_an_event_count_dropped_by_retain_never_matches_an_earlier_read(world):
    # A read stored while another thread's retain dropped the count of an event it had missed: the
    # dropped count must not come back equal to the one the stale entry was read under.
    world.read()
    world.conn.fire(libvirt.VIR_DOMAIN_EVENT_ID_METADATA_CHANGE, world.doms[0], 0, "")
    world.watch.retain([world.doms[1].UUIDString()])
    assert world.read()["web1"] == ["XMLDesc"]
