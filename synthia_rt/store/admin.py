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
            {User.role: "admin", User.password_hash: password_hash, User.active: True, User.updated_at: utcnow()}
        ).where(User.id == existing.id)
        return str(existing.id)
    finally:
        await engine.close_pool(db)
