ovms-fleet churn --server 127.0.0.1:PORT --db node.db --connect-window 0 --cars 500 --rate 2 --lifetime 5 --duration 10
