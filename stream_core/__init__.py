"""utd-stream: headless audio/video sessions on LiveKit, with a pure state-machine core.

``import stream_core`` loads only the standard library, ``transitions`` and
``marshmallow``; the real adapters are found at run time through an entry point.
"""

from stream_core.client import DEFAULT_BASE_URL, DEFAULT_TOKEN_BASE_URL, UTDStreamClient
from stream_core.errors import ErrorCode, UTDStreamException
from stream_core.events import (
    ActiveSpeakersChanged, ConnectionState, ConnectionStateChanged, DataReceived, MediaEvent,
    ParticipantConnected, ParticipantDisconnected, PermissionsChanged, RoomMetadataChanged,
    RecoveryEvent, RejoinAbandoned, Rejoined, RejoinScheduled, SessionResynced,
    TrackPublished, TrackSubscribed, TrackUnpublished, TrackUnsubscribed,
)
from stream_core.frames import FrameStream, UTDAudioFrame, UTDVideoFormat, UTDVideoFrame
from stream_core.models import (
    MAX_SEATS, UTDCall, UTDCallStatus, UTDParticipantRole, UTDPermissions,
    UTDRemoteParticipant, UTDSeat, UTDSeatGrid, UTDSeatMode, UTDSpeakRequest, UTDStage,
    UTDStageMember, UTDStreamType, UTDTokenResponse, UTDTrack,
)
from stream_core.observable import EventStream, Observable
from stream_core.ports import ConnectOptions, EnginePort, MediaPort
from stream_core.sessions import (
    UTDAudioRoomSession, UTDCallSession, UTDLiveStreamSession, UTDLocalParticipant, UTDRoom,
    UTDSession,
)
from stream_core.sessions.recovery import RejoinPolicy

__version__ = "0.1.0"

__all__ = [
    "UTDStreamClient", "DEFAULT_BASE_URL", "DEFAULT_TOKEN_BASE_URL",
    "UTDStreamException", "ErrorCode",
    "UTDSession", "UTDCallSession", "UTDLiveStreamSession", "UTDAudioRoomSession", "UTDRoom",
    "UTDLocalParticipant",
    "UTDStreamType", "UTDCallStatus", "UTDSeatMode", "UTDParticipantRole", "UTDTokenResponse",
    "UTDCall", "UTDStageMember", "UTDStage", "UTDSeat", "UTDSeatGrid", "UTDSpeakRequest",
    "UTDTrack", "UTDRemoteParticipant", "UTDPermissions", "MAX_SEATS",
    "Observable", "EventStream",
    "FrameStream", "UTDAudioFrame", "UTDVideoFrame", "UTDVideoFormat",
    "EnginePort", "MediaPort", "ConnectOptions",
    "MediaEvent", "ConnectionState", "ConnectionStateChanged", "ParticipantConnected",
    "ParticipantDisconnected", "TrackPublished", "TrackUnpublished", "TrackSubscribed",
    "TrackUnsubscribed", "PermissionsChanged", "RoomMetadataChanged", "DataReceived",
    "ActiveSpeakersChanged", "RecoveryEvent", "SessionResynced", "RejoinScheduled",
    "Rejoined", "RejoinAbandoned", "RejoinPolicy",
]
