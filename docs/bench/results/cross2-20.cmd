ovms-fleet cross-node --server ovms.bench.test:25047 --dns 127.0.0.10:42629 --db N1.db,N2.db --connect-window 0 --cars 1000 --apps-per-car 1 --rate 20 --duration 5
