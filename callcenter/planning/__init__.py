"""Planning: how many agents a queue needs (Erlang C and Erlang A) and how many calls to
expect (a per-half-hour forecast from the call log). Pure math in :mod:`.erlang` and
:mod:`.forecast`; :mod:`.store` reads the call log."""
