"""The small protocols the use cases need; adapters implement them without inheriting.

One module per idea; everything is importable from `workpulse.services.ports`."""

from __future__ import annotations

from workpulse.services.ports.accounts import (
    DeviceSessionStore,
    InviteStore,
    OrganizationStore,
    ProjectStore,
    UserStore,
)
from workpulse.services.ports.identity import (
    AccessClaims,
    Clock,
    LoginThrottle,
    PasswordHasher,
    SessionState,
    SessionStateCache,
    TokenCodec,
)
from workpulse.services.ports.jobs import (
    AlertStore,
    Directory,
    JobRunStore,
    SummaryStore,
)
from workpulse.services.ports.lifecycle import (
    DataLifecycle,
)
from workpulse.services.ports.presence import (
    AgentSightings,
    Liveness,
    PresenceStore,
    UserRef,
)
from workpulse.services.ports.reports import (
    HourlyRows,
    RollupStore,
    UserUsage,
)
from workpulse.services.ports.sessions import (
    ActivityLedger,
    Entry,
    Notifier,
    Recorded,
    SessionStore,
    Written,
)
from workpulse.services.ports.unit_of_work import (
    SessionUnitOfWork,
    SessionUnitOfWorkFactory,
    UnitOfWork,
    UnitOfWorkFactory,
)
from workpulse.services.ports.usage import (
    Backlogged,
    DeviceKey,
    OwnedPing,
    PartitionKeeper,
    PingQueue,
    PingStore,
    Replacement,
    UsageStore,
    UserKey,
)

__all__ = [
    "AccessClaims",
    "ActivityLedger",
    "AgentSightings",
    "AlertStore",
    "Backlogged",
    "Clock",
    "DataLifecycle",
    "DeviceKey",
    "DeviceSessionStore",
    "Directory",
    "Entry",
    "HourlyRows",
    "InviteStore",
    "JobRunStore",
    "Liveness",
    "LoginThrottle",
    "Notifier",
    "OrganizationStore",
    "OwnedPing",
    "PartitionKeeper",
    "PasswordHasher",
    "PingQueue",
    "PingStore",
    "PresenceStore",
    "ProjectStore",
    "Recorded",
    "Replacement",
    "RollupStore",
    "SessionState",
    "SessionStateCache",
    "SessionStore",
    "SessionUnitOfWork",
    "SessionUnitOfWorkFactory",
    "SummaryStore",
    "TokenCodec",
    "UnitOfWork",
    "UnitOfWorkFactory",
    "UsageStore",
    "UserKey",
    "UserRef",
    "UserStore",
    "UserUsage",
    "Written",
]
