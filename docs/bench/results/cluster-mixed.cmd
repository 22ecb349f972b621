ovms-fleet mixed --server ovms.bench.test:33986 --dns 127.0.0.10:53048 --db N1.db,N2.db,N3.db --connect-window 0 --cars 3000 --apps-per-car 1 --active 0.1 --duration 30
