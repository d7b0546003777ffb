"""The tunnel circuit in Redis (``keys.TUNNEL_CIRCUIT``), shared by every worker; rules in :mod:`shared.circuit`.

Every change is a compare-and-set (WATCH/MULTI), so of several workers that see the same probe or
failure at once exactly one writes the change and logs its line: one ``tunnel.circuit_open`` when
the tunnel is set aside, one ``tunnel.circuit_closed`` when the URL route resumes.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import redis

from shared import circuit as rules
from shared import keys
from shared.circuit import Circuit, Limits
from shared.log import get_logger
from shared.tunnel import ProbeResult, TunnelState

log = get_logger("worker")


class TunnelCircuit:
    def __init__(self, connection: redis.Redis, limits: Limits, tunnel: TunnelState) -> None:
        self.redis = connection
        self.limits = limits
        self.tunnel = tunnel

    def current(self) -> Circuit:
        return Circuit.from_json(self.redis.get(keys.TUNNEL_CIRCUIT))

    def after_probe(self, result: ProbeResult) -> Circuit:
        return self._change(lambda c, now: rules.after_probe(c, result.ok, result.reason, now), result.detail)

    def verification_failed(self) -> Circuit:
        return self._change(lambda c, now: rules.after_failed_verification(c, now, self.limits),
                            f"{self.limits.failures} pictures were not fetched by Miro within {self.limits.window:g} s")

    def _change(self, rule: Callable[[Circuit, float], Circuit], detail: str) -> Circuit:
        before = self.current()
        if rule(before, time.time()) == before:  # the common case: one GET, no transaction
            return before
        with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(keys.TUNNEL_CIRCUIT)
                    before = Circuit.from_json(pipe.get(keys.TUNNEL_CIRCUIT))
                    after = rule(before, time.time())
                    if after == before:
                        pipe.unwatch()
                        return before
                    pipe.multi()
                    pipe.set(keys.TUNNEL_CIRCUIT, after.to_json())
                    pipe.execute()
                    break
                except redis.WatchError:
                    continue
        if after.is_open and not before.is_open:
            # A circuit opened by failed verifications closes on a probe taken after now, not on the cached one.
            self.tunnel.invalidate()
            log.warning("tunnel.circuit_open", reason=after.reason, until=after.until,
                        detail=f"{detail}; new pictures go by file until a probe passes"
                               + (f" after the {self.limits.cooldown:g} s cooldown" if after.until else ""))
        elif before.is_open and not after.is_open:
            log.info("tunnel.circuit_closed", reason=after.reason, was=before.reason, open_s=round(after.since - before.since, 1))
        return after
