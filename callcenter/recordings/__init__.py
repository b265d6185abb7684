"""Call recording (issue 15): which calls are recorded, the files, their rows, who listened.

One folder, one capability, in the project's layers:

- pure: :mod:`.policy` (which calls are recorded: none, all, a sampled share, on demand),
  :mod:`.paths` (where a file lives under the recordings directory, and that a path from the
  database can never leave it), :mod:`.wav` (a WAV header: closed yet? how long?),
  :mod:`.track` (AMI events -> the rows' changes, ``apply(state, event) -> (state,
  changes)``), :mod:`.retention` (what a purge deletes);
- storage: :mod:`.store` (the ``recordings`` and ``recording_listens`` tables for the CLI and
  the web);
- shells: :mod:`.keeper` (in the AMI bridge: feeds the tracker, checks the closed files,
  hands the rows to the call-log writer), :mod:`.control` (the AMI actions of the agent's
  desktop and the supervisors: mute, record now), :mod:`.web` (the supervisors' pages).

How a recording comes about (docs/recordings.md): the caller's dialplan decides before
Queue() (``[recording-policy]``); app_queue's member Gosub (``[recording-connect]``) starts
MixMonitor on the agent's leg once it answered and raises ``UserEvent(CallRecording)``; the
bridge turns that event into a row, MixMonitorMute events into muted time, and the agent
leg's Hangup into the file check that completes the row.
"""
