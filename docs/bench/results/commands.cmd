ovms-fleet commands --server 127.0.0.1:PORT --db node.db --connect-window 0 --cars 200 --duration 5
