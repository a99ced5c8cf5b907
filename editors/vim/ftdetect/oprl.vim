" oprl recipes: *.oprl
autocmd BufRead,BufNewFile *.oprl setfiletype oprl
