ovms-fleet login-storm --server 127.0.0.1:PORT --db node.db --connect-window 0 --cars 128 --connect-window 64 --duration 5
