"""Everything about event bytes: the event contract v1 wire format (:mod:`.events`, topics and
encoders, which producers such as the simulator import), the one consumed-record type
(:mod:`.records`), the one JSONL file format (:mod:`.jsonl`), times typed by people
(:mod:`.timestamps`) and the tuned decoder and validator (:mod:`.decode`). Pure: no I/O besides
reading a file; imports only :mod:`monitor.contract`, :mod:`monitor.errors` and libraries."""
