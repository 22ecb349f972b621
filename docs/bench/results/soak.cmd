ovms-fleet mixed --server 127.0.0.1:PORT --db node.db --connect-window 0 --cars 5000 --apps-per-car 1 --active 0.1 --duration 600 --plot /work/fresh-bench/docs/bench
