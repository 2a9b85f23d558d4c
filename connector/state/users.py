"""Console users (with their password hash) and failed sign-ins (the login throttle)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, insert, or_, select, update

from crm_renewals.connector.state.database import Db, aware, now
from crm_renewals.connector.state.schema import login_failures, users


@dataclass(frozen=True, slots=True)
class User:
    email: str
    role: str
    created_at: datetime
    last_login_at: datetime | None


class UserRepository:
    """The users and login_failures tables."""

    def __init__(self, db: Db):
        self.db = db

    def add(self, email: str, role: str, password_hash: str) -> bool:
        """A new user (False: the email is taken; nothing changed)."""
        with self.db.write() as conn:
            if conn.execute(select(users.c.email).where(users.c.email == email)).first():
                return False
            conn.execute(
                insert(users).values(
                    email=email, role=role, password_hash=password_hash, created_at=now()
                )
            )
            return True

    def set_password(self, email: str, password_hash: str) -> bool:
        with self.db.write() as conn:
            done = conn.execute(
                update(users).where(users.c.email == email).values(password_hash=password_hash)
            )
            return done.rowcount > 0

    def remove(self, email: str) -> bool:
        with self.db.write() as conn:
            return conn.execute(delete(users).where(users.c.email == email)).rowcount > 0

    def get(self, email: str) -> User | None:
        found = self.credentials(email)
        return found[0] if found else None

    def credentials(self, email: str) -> tuple[User, str] | None:
        """The user and their password hash."""
        u = users.c
        query = select(u.email, u.role, u.created_at, u.last_login_at, u.password_hash)
        with self.db.read() as conn:
            row = conn.execute(query.where(u.email == email)).first()
        if row is None:
            return None
        return User(row[0], row[1], aware(row[2]), aware(row[3])), row[4]

    def list(self) -> list[User]:
        u = users.c
        query = select(u.email, u.role, u.created_at, u.last_login_at).order_by(u.email)
        with self.db.read() as conn:
            return [User(e, r, aware(c), aware(last)) for e, r, c, last in conn.execute(query)]

    def count(self) -> int:
        with self.db.read() as conn:
            return conn.execute(select(func.count()).select_from(users)).scalar() or 0

    def signed_in(self, email: str) -> None:
        """A successful sign-in: when, and the email's failures forgotten."""
        with self.db.write() as conn:
            conn.execute(update(users).where(users.c.email == email).values(last_login_at=now()))
            conn.execute(delete(login_failures).where(login_failures.c.email == email))

    def failed(self, email: str, address: str) -> None:
        with self.db.write() as conn:
            conn.execute(insert(login_failures).values(email=email, address=address, at=now()))

    def failures_since(self, since: datetime, email: str, address: str) -> tuple[int, int]:
        """Failed sign-ins since `since`: for this email, and from this address; older ones
        are forgotten here."""
        f = login_failures.c
        with self.db.write() as conn:
            conn.execute(delete(login_failures).where(f.at < since))
            by_email, by_address = conn.execute(
                select(
                    func.count().filter(f.email == email),
                    func.count().filter(f.address == address),
                ).where(f.at >= since, or_(f.email == email, f.address == address))
            ).one()
        return by_email or 0, by_address or 0
