[(block_body) (list) (arguments)] @indent
["}" "]" ")"] @outdent
