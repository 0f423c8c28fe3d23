"""Running vitmon on one machine for the demo, the tests and the benchmarks: the embedded
Kafka-compatible broker (:mod:`.broker`) and PostgreSQL (:mod:`.postgres`) as child processes
through one helper (:mod:`.processes`), synthetic traffic (:mod:`.synthetic`) and
``vitmon demo`` (:mod:`.demo`). An outer layer: may import the reports and everything below;
only the CLI, tests and benchmarks import it."""
