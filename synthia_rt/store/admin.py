"""``synthia-rt create-admin``: create an admin account, or promote an existing user."""

from __future__ import annotations

from synthia_rt.auth.passwords import Passwords
from synthia_rt.settings import Settings
from synthia_rt.store import engine, users
from synthia_rt.store.tables import User, utcnow


async def create_admin(settings: Settings, email: str, password: str) -> str:
    url = settings.effective_database_url
    db = engine.configure(url)
    await engine.migrate(url)
    await engine.open_pool(db, max_size=2)
    try:
        password_hash = await Passwords(settings).hash(password)
        existing = await users.by_email(email)
        if existing is None:
            record = await users.create(email, password_hash, role="admin")
            return str(record.id)
        await User.update(
            {
                User.role: "admin",
                User.password_hash: password_hash,
                User.active: True,
                User.updated_at: utcnow(),
            }
        ).where(User.id == existing.id)
        await _forget_cached(settings, str(existing.id))
        return str(existing.id)
    finally:
        await engine.close_pool(db)


async def _forget_cached(settings: Settings, user_id: str) -> None:
    """Drop the running servers' cached record of a promoted user (the `user` namespace)."""
    from synthia_rt.auth.usercache import NAMESPACE
    from synthia_rt.kv import create_kv

    kv = create_kv(settings.effective_redis_url, settings.redis_namespace)
    await kv.start()
    try:
        await kv.delete(f"cache:{NAMESPACE}:{user_id}")
    finally:
        await kv.close()
