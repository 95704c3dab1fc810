"""The one SQLAlchemy MetaData every warehouse table belongs to, and the id column types they share."""

from __future__ import annotations

from sqlalchemy import MetaData, String

metadata = MetaData()

ID = String(64)
NAME = String(128)
