ovms-fleet idle --server 127.0.0.1:PORT --db node.db --connect-window 0 --cars 2000 --hold 12
