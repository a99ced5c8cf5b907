[(block_body) (list) (arguments)] @fold
