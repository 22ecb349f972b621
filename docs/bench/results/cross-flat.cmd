ovms-fleet cross-node --server ovms.bench.test:33986 --dns 127.0.0.10:53048 --db N1.db,N2.db,N3.db --connect-window 0 --cars 300 --apps-per-car 1 --rate 0 --window 8 --duration 5
