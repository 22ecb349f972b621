ovms-fleet relay --server 127.0.0.1:PORT --db node.db --connect-window 0 --cars 1000 --apps-per-car 1 --rate 20 --duration 600 --plot /work/fresh-bench/docs/bench
