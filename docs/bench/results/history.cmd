ovms-fleet history --server 127.0.0.1:PORT --db node.db --connect-window 0 --cars 200 --window 8 --duration 5
