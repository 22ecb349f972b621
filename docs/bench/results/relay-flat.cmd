ovms-fleet relay --server 127.0.0.1:PORT --db node.db --connect-window 0 --cars 200 --apps-per-car 1 --rate 0 --window 8 --duration 5
