"""Limit state in Redis, shared by every API process (production). Each operation is
one Lua script, so concurrent processes never race; time comes from Redis's clock."""

from __future__ import annotations

import uuid
from typing import Any

import redis.asyncio as aioredis

from api.limits.gcra import Rate

# KEYS[1]: the TAT key. ARGV: interval ms, burst, peek (1: do not record). Returns ms to wait.
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new = tat + interval
local allow_at = new - interval * burst
if now < allow_at then return tostring(allow_at - now) end
if ARGV[3] ~= '1' then
  redis.call('SET', KEYS[1], tostring(new), 'PX', math.ceil(new - now) + 1)
end
return '0'
"""

# KEYS: all-uploads zset, the owner's zset. ARGV: token, lease ms, per owner, total.
# Members are tokens scored by lease expiry: a crashed process frees its slot in one lease.
_SLOT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then return 'owner' end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 'total' end
local expiry = now + tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], expiry, ARGV[1])
redis.call('ZADD', KEYS[2], expiry, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return ''
"""

_RENEW = """
local t = redis.call('TIME')
local expiry = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[2])
for i = 1, 2 do
  redis.call('ZADD', KEYS[i], 'XX', expiry, ARGV[1])
  redis.call('PEXPIRE', KEYS[i], ARGV[2])
end
return 1
"""


class RedisStore:
    def __init__(self, url: str, *, prefix: str, timeout_seconds: float = 0.25) -> None:
        self._redis: Any = aioredis.Redis.from_url(
            url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds
        )
        self._prefix = prefix
        self._gcra = self._redis.register_script(_GCRA)
        self._slot = self._redis.register_script(_SLOT)
        self._renew = self._redis.register_script(_RENEW)

    def _slot_keys(self, owner: uuid.UUID) -> list[str]:
        return [f"{self._prefix}uploads:all", f"{self._prefix}uploads:owner:{owner}"]

    async def hit(self, key: str, rate: Rate) -> float:
        wait = await self._gcra(keys=[self._prefix + key], args=[rate.interval_ms, rate.burst, 0])
        return float(wait) / 1000

    async def peek(self, key: str, rate: Rate) -> float:
        wait = await self._gcra(keys=[self._prefix + key], args=[rate.interval_ms, rate.burst, 1])
        return float(wait) / 1000

    async def acquire_slot(
        self, owner: uuid.UUID, *, per_owner: int, total: int, lease_seconds: float
    ) -> tuple[str | None, str]:
        token = uuid.uuid4().hex
        lease_ms = int(lease_seconds * 1000)
        full = await self._slot(
            keys=self._slot_keys(owner), args=[token, lease_ms, per_owner, total]
        )
        full = full.decode() if isinstance(full, bytes) else str(full or "")
        return (None, full) if full else (token, "")

    async def renew_slot(self, owner: uuid.UUID, token: str, lease_seconds: float) -> None:
        await self._renew(keys=self._slot_keys(owner), args=[token, int(lease_seconds * 1000)])

    async def release_slot(self, owner: uuid.UUID, token: str) -> None:
        keys = self._slot_keys(owner)
        async with self._redis.pipeline(transaction=True) as pipe:
            await pipe.zrem(keys[0], token).zrem(keys[1], token).execute()

    async def close(self) -> None:
        await self._redis.aclose()
