"""Loopback emulators of the data platforms, for tests, demos and converter development.

Each speaks a platform's real endpoints, JSON shapes and headers, with switchable faults
and a request log. Start one and point omnimedseg at it with its environment variable::

    from omnimedseg.downloaders.emulators import ZenodoEmulator
    with ZenodoEmulator() as emu:
        emu.add_record("123", {"a.zip": b"..."})
        os.environ.update(emu.env)   # OMNIMEDSEG_ZENODO_URL=http://127.0.0.1:<port>

or serve a folder from the shell: ``omnimedseg emulate zenodo DIR``.
"""

from omnimedseg.downloaders.emulators._server import Blob, Emulator, Recorded, Reply, json_reply
from omnimedseg.downloaders.emulators.idc import IdcEmulator
from omnimedseg.downloaders.emulators.platforms import (
                                                        DataverseEmulator,
                                                        FigshareEmulator,
                                                        GitHubEmulator,
                                                        StaticEmulator,
                                                        ZenodoEmulator,
)
from omnimedseg.downloaders.emulators.platforms2 import (
                                                        EMULATORS,
                                                        DoiEmulator,
                                                        KaggleEmulator,
                                                        MendeleyEmulator,
                                                        OsfEmulator,
                                                        TciaEmulator,
)

__all__ = ["Blob", "Emulator", "Recorded", "Reply", "json_reply", "ZenodoEmulator", "FigshareEmulator",
           "DataverseEmulator", "GitHubEmulator", "StaticEmulator", "MendeleyEmulator", "TciaEmulator",
           "OsfEmulator", "KaggleEmulator", "DoiEmulator", "IdcEmulator", "EMULATORS"]
