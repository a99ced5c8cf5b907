" Vim filetype plugin for oprl recipes: comments, indentation, and `oprl check` as the compiler.
if exists('b:did_ftplugin')
  finish
endif
let b:did_ftplugin = 1

setlocal comments=:#
setlocal commentstring=#\ %s
setlocal expandtab shiftwidth=2 softtabstop=2
setlocal iskeyword=a-z,A-Z,48-57,_
setlocal suffixesadd=.oprl
setlocal foldmethod=syntax

" `:make` runs `oprl check` on this file; errors land in the quickfix list. The report prints
" `× message` (`⚠` for a warning) and then `╭─[FILE:LINE:COL]`, which this errorformat reads.
setlocal makeprg=oprl\ check\ %
setlocal errorformat=%E%\\s%#×\ %m,%W%\\s%#⚠\ %m,%Z%\\s%#╭─[%f:%l:%c],%-G%.%#

let b:undo_ftplugin = 'setlocal comments< commentstring< expandtab< shiftwidth< softtabstop<'
      \ . ' iskeyword< suffixesadd< foldmethod< makeprg< errorformat<'
