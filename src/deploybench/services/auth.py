"""Users, roles and API tokens.

Passwords are hashed with argon2. API tokens are 256-bit random strings shown once; only their
sha256 is stored (a fast hash is right for high-entropy secrets, unlike passwords).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from deploybench.errors import UserError
from deploybench.store.lab_models import TokenRow, UserRow

TOKEN_PREFIX = "dbt_"


class Role(StrEnum):
    """What a principal may do: users their own work, operators the farm, admins everything;
    agents are machine accounts that drive targets."""

    USER = "user"
    OPERATOR = "operator"
    ADMIN = "admin"
    AGENT = "agent"


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    user_id: int
    name: str
    role: Role
    token_id: int | None = None

    @property
    def sees_everything(self) -> bool:
        """Operators and admins see every user's experiments and runs."""
        return self.role in (Role.OPERATOR, Role.ADMIN)


class AuthError(UserError):
    """Authentication failed (401)."""


class ForbiddenError(UserError):
    """Authenticated but not allowed (403)."""


def _now() -> datetime:
    return datetime.now(UTC)


def token_sha256(token: str) -> str:
    """What is stored for a token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def hash_password(password: str) -> str:
    """argon2id hash of a password."""
    from argon2 import PasswordHasher

    return PasswordHasher().hash(password)


def check_password(stored: str, password: str) -> bool:
    """True when ``password`` matches the argon2 hash."""
    from argon2 import PasswordHasher
    from argon2.exceptions import VerificationError

    try:
        return PasswordHasher().verify(stored, password)
    except VerificationError:
        return False


class AuthService:
    """Users and tokens in the lab database."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def add_user(
        self,
        name: str,
        role: Role,
        password: str | None = None,
        email: str | None = None,
        webhook_url: str | None = None,
    ) -> int:
        """Create a user (with where completion notices go); an error if the name is taken."""
        with self._sessions.begin() as session:
            row = UserRow(
                name=name,
                role=role.value,
                password_hash=hash_password(password) if password else None,
                email=email,
                webhook_url=webhook_url,
                created_at=_now(),
            )
            session.add(row)
            try:
                session.flush()
            except IntegrityError:
                raise UserError(f"a user named '{name}' already exists") from None
            return row.id

    def user_id(self, name: str) -> int:
        """Id of a user by name."""
        with self._sessions() as session:
            found = session.scalar(select(UserRow.id).where(UserRow.name == name))
        if found is None:
            raise UserError(f"no user named '{name}'")
        return found

    def issue_token(
        self, user_id: int, label: str = "default", ttl: timedelta | None = None
    ) -> tuple[int, str]:
        """A new token for a user: (token id, the secret, shown only now)."""
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = _now()
        with self._sessions.begin() as session:
            row = TokenRow(
                user_id=user_id,
                token_sha256=token_sha256(secret),
                label=label,
                created_at=now,
                expires_at=now + ttl if ttl else None,
            )
            session.add(row)
            session.flush()
            return row.id, secret

    def revoke(self, token_id: int, by: Principal) -> None:
        """Revoke a token (its owner or an admin)."""
        with self._sessions.begin() as session:
            row = session.get(TokenRow, token_id)
            if row is None:
                raise UserError(f"no token {token_id}")
            if row.user_id != by.user_id and by.role is not Role.ADMIN:
                raise ForbiddenError("only the token's owner or an admin can revoke it")
            row.revoked_at = row.revoked_at or _now()

    def authenticate(self, token: str) -> Principal:
        """The principal behind a bearer token; AuthError when unknown, revoked or expired."""
        digest = token_sha256(token)
        now = _now()
        with self._sessions.begin() as session:
            found = session.execute(
                select(TokenRow, UserRow)
                .join(UserRow, UserRow.id == TokenRow.user_id)
                .where(TokenRow.token_sha256 == digest)
            ).first()
            if found is None:
                raise AuthError("unknown API token")
            token_row, user = found
            if token_row.revoked_at is not None:
                raise AuthError("this API token was revoked")
            expires = token_row.expires_at
            if expires is not None and expires.replace(tzinfo=expires.tzinfo or UTC) < now:
                raise AuthError("this API token has expired")
            session.execute(
                update(TokenRow).where(TokenRow.id == token_row.id).values(last_used_at=now)
            )
            return Principal(user.id, user.name, Role(user.role), token_row.id)

    def has_users(self) -> bool:
        """Whether any user exists (the first start creates an admin)."""
        with self._sessions() as session:
            return session.scalar(select(UserRow.id).limit(1)) is not None
