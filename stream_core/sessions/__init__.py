"""The service layer: sessions ask the engine, mirror its state, and make the media follow."""

from stream_core.sessions.audio_room import UTDAudioRoomSession
from stream_core.sessions.base import DEFAULT_GRANT_TIMEOUT, UTDLocalParticipant, UTDSession
from stream_core.sessions.call import UTDCallSession
from stream_core.sessions.live_stream import UTDLiveStreamSession
from stream_core.sessions.room import UTDRoom

__all__ = ["UTDSession", "UTDLocalParticipant", "UTDRoom", "UTDCallSession",
           "UTDLiveStreamSession", "UTDAudioRoomSession", "DEFAULT_GRANT_TIMEOUT"]
