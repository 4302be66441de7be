"""The chat example: users who set a name and go online and offline, and
the messages they send."""

from dataclasses import dataclass, replace
from typing import Annotated, Optional

from worldline import Identity, Timestamp, auto_inc, index, log, primary_key, reducer, table, u64


@table(name="user", public=True)
@dataclass
class User:
    """Someone who has connected or set a name."""

    identity: Annotated[Identity, primary_key]
    name: Optional[str]
    online: bool


@table(name="message", public=True, indexes={"by_sender_sent": ["sender", "sent"]})
@dataclass
class Message:
    """A chat message."""

    id: Annotated[u64, primary_key, auto_inc]
    sender: Annotated[Identity, index]
    sent: Timestamp
    text: str


# Unicode's White_Space, which Rust's `str::trim` strips; `str.strip()`
# would strip U+001C to U+001F too (Python counts them as whitespace).
WHITESPACE = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


@reducer
def set_name(ctx, name: str):
    """Sets the caller's name."""
    name = name.strip(WHITESPACE)
    if not name:
        raise ValueError("names must not be empty")
    user = ctx.db.user.identity.find(ctx.sender)
    if user is not None:
        ctx.db.user.identity.update(replace(user, name=name))
    else:
        ctx.db.user.insert(User(ctx.sender, name, False))


@reducer
def send_message(ctx, text: str):
    """Sends a message from the caller."""
    if not text.strip(WHITESPACE):
        raise ValueError("messages must not be empty")
    message = ctx.db.message.insert(Message(0, ctx.sender, ctx.timestamp, text))
    log.info(f"message {message.id} from {ctx.sender}")


@reducer(client_connected=True)
def client_connected(ctx):
    """Marks the caller online, creating their user row on first connect."""
    set_online(ctx, True)


@reducer(client_disconnected=True)
def client_disconnected(ctx):
    """Marks the caller offline."""
    set_online(ctx, False)


def set_online(ctx, online):
    user = ctx.db.user.identity.find(ctx.sender)
    if user is not None:
        ctx.db.user.identity.update(replace(user, online=online))
    else:
        ctx.db.user.insert(User(ctx.sender, None, online))
